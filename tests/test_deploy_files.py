"""The deployment files (Dockerfile, compose.yaml, deploy/, .github/) agree with the code.

No Docker engine or cluster runs here, so these read the files: they parse, every long-running
container has a health check or probe on an endpoint that exists, and every variable and command
they use is one the code has.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.core.management import get_commands
from django.urls import Resolver404, resolve

from pipeline_whisperer.tests.test_documented_settings import _variables_read_by_code

# Read by a library rather than by our env helpers (prometheus_client's multiprocess mode).
# Read by prometheus_client and by boto3 (its credential chain, for the off-site backups).
READ_BY_LIBRARIES = {"PROMETHEUS_MULTIPROC_DIR", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}

ROOT = Path(__file__).resolve().parent.parent
KUBERNETES = ROOT / "deploy" / "kubernetes"
APP_IMAGE = "pipeline-whisperer"
STAGES = ("relay", "scorer", "outreach", "dispatch", "feedback")


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def app_services() -> dict[str, dict[str, Any]]:
    """The compose services that run our image."""
    return {name: spec for name, spec in compose()["services"].items() if APP_IMAGE in spec.get("image", "")}


def manifests() -> list[dict[str, Any]]:
    documents = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        documents += [document for document in yaml.safe_load_all(path.read_text()) if document]
    return documents


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [document for document in manifests() if document["kind"] == kind]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return workload["spec"]["template"]["spec"]


def app_containers() -> list[dict[str, Any]]:
    workloads = [*of_kind("Deployment"), *of_kind("Job"), *of_kind("CronJob")]
    return [container for workload in workloads for container in pod_spec(workload)["containers"]]


def http_paths_in_commands(commands: list[list[str]]) -> list[str]:
    return [path for command in commands for path in re.findall(r"http://[^/'\"]+(/[^'\"\s]*)", " ".join(command))]


def probe_paths() -> list[str]:
    """Every HTTP path a probe or health check asks for: Kubernetes, compose and the Dockerfile."""
    paths = [
        probe["httpGet"]["path"]
        for deployment in of_kind("Deployment")
        for container in pod_spec(deployment)["containers"]
        for kind in ("startupProbe", "readinessProbe", "livenessProbe")
        if "httpGet" in (probe := container.get(kind, {}))
    ]
    paths += http_paths_in_commands([spec["healthcheck"]["test"] for spec in app_services().values()])
    dockerfile_check = re.search(r"^HEALTHCHECK .*$", (ROOT / "Dockerfile").read_text().replace("\\\n", ""), re.M)
    assert dockerfile_check is not None
    paths += http_paths_in_commands([[dockerfile_check.group(0)]])
    return paths


def management_commands(commands: list[list[str]]) -> list[list[str]]:
    """The `manage.py NAME ARGS` parts of commands, shell loops included."""
    found = []
    for command in commands:
        for match in re.finditer(r"manage\.py ((?:[\w-]+ ?)+)", " ".join(command)):
            found.append(match.group(1).split())
    return found


def all_commands() -> list[list[str]]:
    commands = [spec["command"] for spec in app_services().values() if "command" in spec]
    commands += [spec["healthcheck"]["test"] for spec in app_services().values()]
    for container in app_containers():
        commands.append(container["command"])
        commands += [
            probe["exec"]["command"] for probe in container.values() if isinstance(probe, dict) and "exec" in probe
        ]
    return commands


def test_compose_file_has_every_service_the_deployment_needs():
    assert {"api", *STAGES, "migrate", "backup", "postgres", "redis", "redpanda", "nginx"} <= compose()[
        "services"
    ].keys()


def test_every_compose_service_has_a_health_check():
    assert [name for name, spec in compose()["services"].items() if "test" not in spec.get("healthcheck", {})] == []


def test_compose_dependencies_wait_for_health_or_completion():
    services = compose()["services"]
    for name, spec in services.items():
        for dependency, condition in spec.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert condition["condition"] in {"service_healthy", "service_completed_successfully"}, name


def test_compose_data_services_are_only_on_the_internal_network():
    spec = compose()
    assert spec["networks"]["backend"]["internal"] is True
    for name in ("postgres", "redis", "redpanda"):
        assert spec["services"][name]["networks"] == ["backend"]
        assert "ports" not in spec["services"][name]


def test_compose_sets_only_variables_the_code_reads():
    set_by_compose = {name for spec in app_services().values() for name in spec.get("environment", {})}
    assert sorted(set_by_compose - _variables_read_by_code() - READ_BY_LIBRARIES) == []


def test_kubernetes_manifests_have_every_kind_the_deployment_needs():
    kinds = {document["kind"] for document in manifests()}
    expected = {"Deployment", "Service", "Ingress", "HorizontalPodAutoscaler", "ConfigMap", "Secret", "CronJob", "Job"}
    assert expected | {"PodDisruptionBudget"} <= kinds
    assert {deployment["metadata"]["name"] for deployment in of_kind("Deployment")} == {"api", *STAGES}


def test_every_kubernetes_deployment_container_has_a_liveness_probe_and_a_startup_probe():
    for deployment in of_kind("Deployment"):
        for container in pod_spec(deployment)["containers"]:
            assert {"livenessProbe", "startupProbe"} <= container.keys(), container["name"]


def test_kubernetes_jobs_have_a_deadline_instead_of_probes():
    for job in [*of_kind("Job"), *[cron["spec"]["jobTemplate"] for cron in of_kind("CronJob")]]:
        assert job["spec"]["activeDeadlineSeconds"] > 0


def test_every_kubernetes_container_runs_as_non_root_on_a_read_only_root_filesystem():
    for workload in [*of_kind("Deployment"), *of_kind("Job"), *of_kind("CronJob")]:
        assert pod_spec(workload)["securityContext"]["runAsNonRoot"] is True
        for container in pod_spec(workload)["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_consuming_stages_scale_up_to_the_partition_count_and_no_further():
    [config] = of_kind("ConfigMap")
    partitions = int(config["data"]["KAFKA_TOPIC_PARTITIONS"])
    autoscalers = {
        hpa["spec"]["scaleTargetRef"]["name"]: hpa["spec"]["maxReplicas"] for hpa in of_kind("HorizontalPodAutoscaler")
    }
    assert {stage: autoscalers[stage] for stage in ("scorer", "outreach", "feedback")} == dict.fromkeys(
        ("scorer", "outreach", "feedback"), partitions
    )
    assert "api" in autoscalers


def test_kubernetes_config_and_secret_hold_only_variables_the_code_reads():
    keys = {key for config in of_kind("ConfigMap") for key in config["data"]}
    keys |= {key for secret in of_kind("Secret") for key in secret["stringData"]}
    keys |= {variable["name"] for container in app_containers() for variable in container.get("env", [])}
    assert sorted(keys - _variables_read_by_code() - READ_BY_LIBRARIES) == []


def test_the_pool_is_sized_to_the_gunicorn_threads_in_kubernetes():
    [config] = of_kind("ConfigMap")
    assert config["data"]["DB_POOL_MAX_SIZE"] == config["data"]["GUNICORN_THREADS"]


def test_every_probe_path_is_an_endpoint_that_exists():
    """Passes once the health endpoints (/health/..., built beside this) are merged."""
    paths = probe_paths()
    assert {"/health/liveness", "/health/readiness", "/health/startup"} <= set(paths)
    unresolved = []
    for path in paths:
        try:
            resolve(path)
        except Resolver404:
            unresolved.append(path)
    assert unresolved == []


def test_every_management_command_the_deployment_runs_exists():
    """`backup` passes once the ops commands (built beside this) are merged."""
    commands = management_commands(all_commands())
    available = get_commands()
    assert {name for name, *_ in commands} >= {"migrate", "run_pipeline", "backup"}
    assert sorted({name for name, *_ in commands if name not in available}) == []
    stages = {args[0] for name, *args in commands if name == "run_pipeline"}
    assert stages == set(STAGES)


def test_the_image_runs_gunicorn_as_a_non_root_user_and_never_migrates_at_start():
    dockerfile = (ROOT / "Dockerfile").read_text()
    runtime = dockerfile.split(" AS runtime")[1]
    [user] = re.findall(r"^USER (\S+)", runtime, re.M)
    assert user.split(":")[0] not in {"root", "0"}
    [command] = re.findall(r"^CMD (.+)$", runtime, re.M)
    assert command == '["gunicorn", "-c", "deploy/gunicorn.conf.py"]'
    assert "collectstatic" in runtime


def test_the_proxies_accept_the_same_largest_body_as_django():
    nginx = (ROOT / "deploy" / "nginx" / "templates" / "default.conf.template").read_text()
    assert "client_max_body_size ${MAX_REQUEST_BODY_BYTES};" in nginx
    compose_default = compose()["services"]["nginx"]["environment"]["MAX_REQUEST_BODY_BYTES"]
    assert compose_default == f"${{MAX_REQUEST_BODY_BYTES:-{settings.DATA_UPLOAD_MAX_MEMORY_SIZE}}}"
    [ingress] = of_kind("Ingress")
    size = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert int(size.removesuffix("m")) * 1024 * 1024 == settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def test_metrics_are_not_reachable_through_the_public_proxies():
    nginx = (ROOT / "deploy" / "nginx" / "templates" / "default.conf.template").read_text()
    assert re.search(r"location = /metrics \{\s*return 404;", nginx)
    [ingress] = of_kind("Ingress")
    public = [path["path"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    assert not [path for path in public if "/metrics".startswith(path.rstrip("/") or "/")]


def test_the_ingress_routes_what_recipients_and_email_providers_reach():
    [ingress] = of_kind("Ingress")
    public = {path["path"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]}
    assert {"/api", "/unsubscribe", "/webhooks"} <= public


@pytest.mark.parametrize("workflow", ["ci.yml", "deploy.yml"])
def test_workflows_parse_and_call_only_make_targets_that_exist(workflow):
    document = yaml.safe_load((ROOT / ".github" / "workflows" / workflow).read_text())
    makefile = (ROOT / "Makefile").read_text()
    assert document["jobs"]
    steps = [step for job in document["jobs"].values() for step in job["steps"]]
    for target in re.findall(r"make (\w[\w-]*)", " ".join(step.get("run", "") for step in steps)):
        assert re.search(rf"^{target}:", makefile, re.M), target


def test_ci_runs_the_tests_with_postgresql_and_redis_service_containers():
    document = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    services = document["jobs"]["test"]["services"]
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["redis"]["image"].startswith("redis:7")
    runs = " ".join(step.get("run", "") for job in document["jobs"].values() for step in job["steps"])
    for target in ("lint", "check", "test", "typecheck", "bandit", "audit"):
        assert f"make {target}" in runs


def test_pre_commit_runs_ruff_and_a_secret_scanner():
    hooks = {
        hook["id"]
        for repo in yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"]
        for hook in repo["hooks"]
    }
    assert {"ruff-check", "ruff-format", "gitleaks", "detect-private-key", "end-of-file-fixer"} <= hooks


def test_nginx_limits_posts_to_the_admin_login_per_client_address():
    nginx = (ROOT / "deploy" / "nginx" / "templates" / "default.conf.template").read_text()
    assert re.search(r"map \$request_method \$pw_login_post_client \{\s*POST\s+\$binary_remote_addr;", nginx)
    assert "limit_req_zone $pw_login_post_client zone=pw_admin_login:10m rate=6r/m;" in nginx
    login = re.search(r"location = /admin/login/ \{(.*?)\}", nginx, flags=re.DOTALL)
    assert login is not None
    assert "limit_req zone=pw_admin_login burst=5 nodelay;" in login.group(1)
    assert "limit_req_status 429;" in login.group(1)
    assert "proxy_pass http://pipeline_api;" in login.group(1)
