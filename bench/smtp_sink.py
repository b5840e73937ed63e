"""An SMTP server on loopback that only counts the messages it accepts (aiosmtpd).

bench/pipeline_throughput.py runs it as a process of its own, so its CPU is not the benchmark's.

    python bench/smtp_sink.py PORT      # on SIGTERM or SIGINT: prints {"messages": N} and exits
"""

from __future__ import annotations

import json
import signal
import sys
import threading

from aiosmtpd.controller import Controller


class Counter:
    def __init__(self) -> None:
        self.messages = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages += 1  # one event loop: no lock needed
        return "250 Message accepted for delivery"


def main() -> None:
    counter, stop = Counter(), threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    controller = Controller(counter, hostname="127.0.0.1", port=int(sys.argv[1]))
    controller.start()
    while not stop.wait(0.5):
        pass
    controller.stop()
    print(json.dumps({"messages": counter.messages}), flush=True)


if __name__ == "__main__":
    main()
