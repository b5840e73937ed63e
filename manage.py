#!/usr/bin/env python
"""Django's command-line utility; a settings error is one line and exit status 2."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipeline_whisperer.settings")
    from django.core.management import execute_from_command_line

    from pipeline_whisperer.env import SettingsError

    try:
        execute_from_command_line(sys.argv)
    except SettingsError as error:
        sys.stderr.write(f"configuration error: {error}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
