"""`make deploy-check` (deploy/check.py): each checker really runs, passes on the real files and
fails on a deliberately broken copy of them.

The tools are the real ones: hadolint, the Compose binary, jsonschema with the vendored compose
schema, kubernetes-validate, checkov (from .venv-deploycheck, which `make test` creates) and
systemd-analyze. checkov takes seconds a run, so it runs twice: on the real files, and on one set
of broken copies with a finding in each kind of file.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from leads.management.commands.run_pipeline import LOOPS
from leads.pipeline.stages import STAGES

ROOT = Path(__file__).resolve().parent.parent
CHECK = ROOT / "deploy" / "check.py"
SYSTEMD = ROOT / "deploy" / "systemd"


def deploy_check(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(CHECK), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)  # noqa: S603


def broken_copy(source: Path, destination: Path, old: str, new: str) -> Path:
    """A copy of `source` at `destination` with one deliberate mistake."""
    text = source.read_text()
    assert old in text, f"{source} no longer has {old!r}: pick another mistake"
    destination.write_text(text.replace(old, new, 1))
    return destination


@pytest.fixture(scope="module", autouse=True)
def tools_are_installed() -> None:
    missing = [path for path in (ROOT / ".venv-deploycheck" / "bin" / "checkov",) if not path.exists()]
    assert not missing, f"{missing[0]} is missing: run `make deploy-check` (or `make test`), which creates it"
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing: apt-get install systemd"


@pytest.mark.parametrize("checker", ["hadolint", "compose", "compose-schema", "kubernetes", "checkov", "systemd"])
def test_the_real_deployment_files_pass(checker: str) -> None:
    result = deploy_check(checker)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "$ " in result.stdout  # the tool ran


def test_hadolint_fails_on_a_dockerfile_finding(tmp_path: Path) -> None:
    dockerfile = broken_copy(ROOT / "Dockerfile", tmp_path / "Dockerfile", "WORKDIR /app\n", "RUN cd /app\n")
    result = deploy_check("hadolint", dockerfile)
    assert result.returncode == 1
    assert "DL3003" in result.stdout  # use WORKDIR to switch directories
    assert "deploy-check: hadolint FAILED" in result.stderr


def test_compose_config_fails_on_a_dependency_that_is_not_a_service(tmp_path: Path) -> None:
    # Valid by the schema (depends_on names are free), wrong for Compose: only `config` catches it.
    compose = broken_copy(
        ROOT / "compose.yaml",
        tmp_path / "compose.yaml",
        "      api: {condition: service_healthy}",
        "      apii: {condition: service_healthy}",
    )
    assert deploy_check("compose-schema", compose).returncode == 0
    result = deploy_check("compose", compose)
    assert result.returncode == 1
    assert "apii" in result.stderr


def test_the_compose_schema_fails_on_a_misspelled_key(tmp_path: Path) -> None:
    compose = broken_copy(
        ROOT / "compose.yaml", tmp_path / "compose.yaml", "    stop_grace_period: 40s", "    stop_grace_periods: 40s"
    )
    result = deploy_check("compose-schema", compose)
    assert result.returncode == 1
    assert "compose.yaml: services.api: 'stop_grace_periods' does not match any of the regexes" in result.stdout


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("  replicas: 2\n", "  replicas: two\n", "is not of type 'integer'"),
        # Only the strict schemas refuse a key Kubernetes does not know (it would ignore the probe).
        ("          readinessProbe:\n", "          readinesProbe:\n", "readinesProbe"),
    ],
)
def test_kubernetes_validate_fails_on_a_broken_object(tmp_path: Path, old: str, new: str, message: str) -> None:
    manifest = broken_copy(ROOT / "deploy" / "kubernetes" / "api.yaml", tmp_path / "api.yaml", old, new)
    result = deploy_check("kubernetes", manifest)
    assert result.returncode == 1
    assert message in result.stdout + result.stderr


def test_checkov_fails_on_a_finding_in_each_kind_of_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    dockerfile = broken_copy(ROOT / "Dockerfile", broken / "Dockerfile", "USER 10001:10001\n", "")
    # A key that looks like a real AWS access key, in the environment of a service.
    compose = broken_copy(
        ROOT / "compose.yaml",
        broken / "compose.yaml",
        "    KAFKA_BOOTSTRAP_SERVERS: redpanda:9092\n",
        "    KAFKA_BOOTSTRAP_SERVERS: redpanda:9092\n    AWS_ACCESS_KEY_ID: AKIAZ4X2P7QJ3LMNRV5W\n",
    )
    manifests = broken / "kubernetes"
    manifests.mkdir()
    broken_copy(
        ROOT / "deploy" / "kubernetes" / "api.yaml",
        manifests / "api.yaml",
        "allowPrivilegeEscalation: false",
        "privileged: true",
    )
    result = deploy_check("checkov", dockerfile, compose, manifests)
    assert result.returncode == 1, result.stdout
    # checkov names a file relative to the working directory ("/../../tmp/..."): compare the ends.
    failures = dict(re.findall(r"Check: (CKV\w+):.*\n\tFAILED for resource: .*\n\tFile: (\S+?):", result.stdout))
    assert failures.get("CKV_DOCKER_3", "").endswith("/broken/Dockerfile")  # no USER: the container runs as root
    assert failures.get("CKV_SECRET_2", "").endswith("/broken/compose.yaml")  # an AWS access key
    assert failures.get("CKV_K8S_16", "").endswith("/broken/kubernetes/api.yaml")  # a privileged container


@pytest.mark.parametrize(
    ("unit", "old", "new", "message"),
    [
        # A misspelled value is only "ignoring" on stderr, with exit 0: the checker fails on it.
        ("pipeline-whisperer-web.service", "Type=notify", "Type=notifyy", "Failed to parse service type"),
        ("pipeline-whisperer-web.service", "/.venv/bin/gunicorn ", "/.venv/bin/gunicron ", "gunicron"),
        (
            "pipeline-whisperer-backup.timer",
            "OnCalendar=*-*-* *:15:00 UTC",
            "OnCalendar=nightly",
            "Failed to parse calendar",
        ),
        # The shared drop-in applies to every unit, so a mistake there is found too.
        (
            "pipeline-whisperer-.service.d/10-common.conf",
            "ProtectSystem=strict",
            "ProtectSystem=strictly",
            "Failed to parse protect system value",
        ),
    ],
)
def test_systemd_analyze_fails_on_a_broken_unit(tmp_path: Path, unit: str, old: str, new: str, message: str) -> None:
    units = tmp_path / "systemd"
    shutil.copytree(SYSTEMD, units)
    broken_copy(SYSTEMD / unit, units / unit, old, new)
    result = deploy_check("systemd", units)
    assert result.returncode == 1
    assert message in result.stdout


def test_systemd_security_fails_when_the_sandbox_is_taken_away(tmp_path: Path) -> None:
    units = tmp_path / "systemd"
    shutil.copytree(SYSTEMD, units)
    (units / "pipeline-whisperer-.service.d" / "10-common.conf").write_text(
        "[Service]\nUser=pipeline-whisperer\nEnvironmentFile=/etc/pipeline-whisperer/pipeline-whisperer.env\n"
    )
    result = deploy_check("systemd", units)
    assert result.returncode == 1
    assert re.search(r"Overall exposure level for pipeline-whisperer-web.service: ([3-9]|10)\.\d", result.stdout)


def test_the_target_starts_the_web_process_and_one_unit_per_pipeline_stage() -> None:
    target = (SYSTEMD / "pipeline-whisperer.target").read_text()
    wanted = set(" ".join(re.findall(r"^Wants=(.*)$", target, re.M)).split())
    stages = {*STAGES, *LOOPS}
    assert wanted == {
        "pipeline-whisperer-web.service",
        *(f"pipeline-whisperer-stage@{stage}.service" for stage in stages),
    }


def example_settings() -> dict[str, str]:
    return dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", (ROOT / ".env.production.example").read_text(), re.M))


def test_only_the_backup_unit_may_write_to_the_backup_dir_and_every_timer_starts_its_service() -> None:
    writers = {
        path.name: re.findall(r"^ReadWritePaths=(.*)$", path.read_text(), re.M) for path in SYSTEMD.glob("*.service")
    }
    assert {name: paths for name, paths in writers.items() if paths} == {
        "pipeline-whisperer-backup.service": [example_settings()["BACKUP_DIR"]]
    }
    for timer in SYSTEMD.glob("*.timer"):
        assert (SYSTEMD / timer.name.replace(".timer", ".service")).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuchchecker"], "invalid choice: 'nosuchchecker'"),
        (["hadolint", "no/such/Dockerfile"], "no such file: no/such/Dockerfile"),
    ],
)
def test_bad_arguments_exit_non_zero_with_one_line(args: list[str], message: str) -> None:
    result = deploy_check(*args)
    assert result.returncode != 0
    assert message in result.stderr


def test_the_environment_file_leaves_out_what_differs_per_process() -> None:
    """The shared file wins over a unit's Environment=, so the documented install step drops those lines."""
    install = re.search(r"grep -vE '\^\(([A-Z_|]+)\)='", (ROOT / "docs" / "DEPLOYMENT.md").read_text())
    assert install, "docs/DEPLOYMENT.md no longer shows how the environment file is made"
    left_out = set(install.group(1).split("|"))
    units = [path.read_text() for path in SYSTEMD.rglob("*") if path.is_file()]
    set_by_units = {
        name
        for text in units
        for line in re.findall(r"^Environment=(.*)$", text, re.M)
        for name in re.findall(r"(\w+)=", line)
    }
    # The stages' probe port too: five stages on one host cannot share the example's one.
    assert set_by_units & set(example_settings()) | {"PIPELINE_PROBE_PORT"} == left_out
