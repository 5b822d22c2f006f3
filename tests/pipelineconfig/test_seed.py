"""The seed team's files (fixtures/seed, as published) load with their `${...}` set, and the cross-check finds their mistake."""

from datetime import timedelta

import pytest

from apps.pipelineconfig import (
    MASK,
    ConfigError,
    load_app_config,
    load_control_plane_config,
    load_ecs_definitions,
    load_piped_config,
    validate_app_dir,
)

from .conftest import SEED, SEED_CONTROL_PLANE_ENV


def test_it_loads_the_seed_app_config():
    spec = load_app_config(SEED / "app.pipecd.yaml").spec
    assert spec.name == "hogehoge"
    assert spec.labels == {"env": "dev", "team": "zozo-xxxx", "app": "hogehoge"}
    assert [m.event for m in spec.notification.mentions] == [
        "DEPLOYMENT_TRIGGERED",
        "DEPLOYMENT_SUCCEEDED",
        "DEPLOYMENT_FAILED",
        "DEPLOYMENT_ROLLING_BACK",
    ]
    assert spec.input.target_groups.primary.container_port == 8080
    assert spec.input.target_groups.canary.target_group_arn.endswith("targetgroup/canary/xxxxxxxxxxxxx")
    stages = spec.pipeline.stages
    assert [s.name for s in stages] == [
        "ECS_CANARY_ROLLOUT",
        "ECS_TRAFFIC_ROUTING",
        "WAIT_APPROVAL",
        "ECS_PRIMARY_ROLLOUT",
        "ECS_TRAFFIC_ROUTING",
        "ECS_CANARY_CLEAN",
    ]
    assert stages[0].options.scale == stages[0].with_.scale == 20
    assert stages[1].options.weights() == (90, 10)
    assert (stages[2].options.timeout, stages[2].options.min_approver_num) == (timedelta(hours=6), 1)
    assert stages[4].options.weights() == (100, 0)
    assert spec.auto_rollback is True


def test_it_normalises_the_seed_definitions_and_unwraps_the_service():
    spec = load_app_config(SEED / "app.pipecd.yaml").spec
    definitions = load_ecs_definitions(SEED, spec)
    assert definitions.service == {
        "cluster": "arn:aws:ecs:ap-northeast-1:xxxx:cluster/sample-cluster",
        "serviceName": "hogehoge",
        "desiredCount": 6,
        "launchType": "FARGATE",
        "schedulingStrategy": "REPLICA",
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": ["subnet-xxxx", "subnet-yyyy", "subnet-zzzz"],
                "securityGroups": ["sg-xxxx"],
                "assignPublicIp": "DISABLED",
            }
        },
        "propagateTags": "SERVICE",
        "deploymentController": {"type": "EXTERNAL"},
    }
    [warning] = definitions.warnings
    assert warning.file == str(SEED / "servicedef.yaml")
    assert warning.severity == "warning"
    assert "wrapped as {version, spec}" in warning.message
    task = definitions.task
    assert (task["family"], task["cpu"], task["memory"], task["networkMode"]) == (
        "hogehoge",
        "256",
        "512",
        "awsvpc",
    )
    [container] = task["containerDefinitions"]
    assert container["name"] == "app"
    assert container["portMappings"] == [{"containerPort": 8080, "protocol": "tcp"}]
    assert container["logConfiguration"]["options"]["awslogs-group"] == "/ecs/hogehoge"
    assert definitions.containers.keys() == {"app"}


def test_the_cross_check_catches_hogehoge_against_the_app_container():
    spec = load_app_config(SEED / "app.pipecd.yaml").spec
    problems = validate_app_dir(SEED, spec)
    errors = [p for p in problems if p.is_error]
    assert [(p.path, p.line, p.col) for p in errors] == [
        ("spec.input.targetGroups.primary.containerName", 21, 24),
        ("spec.input.targetGroups.canary.containerName", 25, 24),
    ]
    assert all(p.file == str(SEED / "app.pipecd.yaml") for p in errors)
    assert errors[0].message == (
        "container 'hogehoge' is not defined in taskdef.yaml (its containers: app); "
        "AWS would refuse to create the task set"
    )
    # The wrapper warning comes along, naming the service definition file.
    assert [p.file for p in problems if not p.is_error] == [str(SEED / "servicedef.yaml")]


def test_the_cross_check_passes_once_the_container_name_is_fixed(seed_app_dir):
    config = seed_app_dir / "app.pipecd.yaml"
    config.write_text(config.read_text().replace("containerName: hogehoge", "containerName: app"))
    spec = load_app_config(config).spec
    assert [p for p in validate_app_dir(seed_app_dir, spec) if p.is_error] == []


def test_the_cross_check_catches_a_port_the_container_does_not_publish(seed_app_dir):
    config = seed_app_dir / "app.pipecd.yaml"
    text = config.read_text().replace("containerName: hogehoge", "containerName: app")
    config.write_text(text.replace("containerPort: 8080", "containerPort: 80", 1))
    problems = [p for p in validate_app_dir(seed_app_dir, load_app_config(config).spec) if p.is_error]
    [problem] = problems
    assert problem.path == "spec.input.targetGroups.primary.containerPort"
    assert problem.line == 22
    assert "does not publish port 80 (its containerPort values: 8080)" in problem.message


def test_it_loads_the_seed_piped_config(seed_piped_env):
    loaded = load_piped_config(SEED / "piped-config.yaml", env=seed_piped_env)
    spec = loaded.spec
    assert loaded.warnings == []
    assert (spec.project_id, spec.piped_id) == ("your-project-dev", "piped-for-tests")
    assert spec.api_address == "pipecd.example.test:443"
    assert spec.piped_key() == "the-piped-key"
    assert spec.git.ssh_key().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    assert spec.repository("manifests").remote == "git@github.com:hoge/manifests.git"
    assert spec.repository("manifests").branch == "main"
    [ecs] = spec.ecs_providers()
    assert (ecs.name, ecs.config.region, ecs.config.profile) == ("ECS", "ap-northeast-1", "")
    assert spec.platform_provider("ECS") is ecs
    assert spec.cloud_providers == [ecs]
    assert spec.sync_interval == timedelta(minutes=1)
    [receiver] = spec.notifications.receivers_for("DEPLOYMENT_SUCCEEDED", app="hogehoge")
    assert receiver.slack.hook_url == "https://hooks.slack.test/services/T000/B000/XXXX"
    assert spec.notifications.receivers_for("DEPLOYMENT_PLANNED") == []


def test_the_seed_piped_config_masks_its_secrets(seed_piped_env):
    masked = load_piped_config(SEED / "piped-config.yaml", env=seed_piped_env).spec.mask()
    assert masked["pipedKeyData"] == MASK
    assert masked["git"]["sshKeyData"] == MASK
    assert masked["notifications"]["receivers"][0]["slack"]["hookURL"] == MASK
    assert masked["pipedKeyFile"] == ""  # an empty secret stays empty
    assert masked["projectID"] == "your-project-dev"
    assert masked["platformProviders"][0]["config"]["region"] == "ap-northeast-1"
    flat = repr(masked)
    for value in seed_piped_env.values():
        if value not in ("your-project-dev", "piped-for-tests", "example.test", "manifests"):
            assert value not in flat


def test_it_loads_the_seed_control_plane_config():
    spec = load_control_plane_config(SEED / "control-plane-config.yaml", env=SEED_CONTROL_PLANE_ENV).spec
    assert spec.state_key == "state-key-for-tests"
    assert spec.datastore.type == "MYSQL"
    assert spec.datastore.config.url == "pipecd:s3cr:t@pass@tcp(pipecd-mysql:3306)"
    assert spec.mysql_url() == "mysql://pipecd:s3cr%3At%40pass@pipecd-mysql:3306/controlplane"
    assert spec.database_settings() == {
        "ENGINE": "django.db.backends.mysql",
        "NAME": "controlplane",
        "USER": "pipecd",
        "PASSWORD": "s3cr:t@pass",
        "HOST": "pipecd-mysql",
        "PORT": "3306",
        "OPTIONS": {"charset": "utf8mb4"},
    }
    assert spec.filestore_settings() == {
        "type": "S3",
        "config": {
            "bucket": "dev-zozomo-pipecd-filestore",
            "region": "ap-northeast-1",
            "profile": "",
            "credentialsFile": "",
            "roleARN": "",
            "tokenFile": "",
        },
    }
    sso = spec.sso_config("cognito-azure")
    assert sso.provider == "OIDC"
    assert sso.session_ttl is None
    oidc = sso.oidc
    assert (oidc.client_id, oidc.client_secret) == ("client-id-for-tests", "client-secret-for-tests")
    assert oidc.issuer == "https://cognito-idp.ap-northeast-1.amazonaws.com/ap-northeast-1_TESTPOOL"
    assert oidc.redirect_uri == "https://pipecd.example.test/auth/callback"
    assert oidc.scopes == ["openid", "profile"]
    assert oidc.roles_claim_key == "groups"  # default
    masked = spec.mask()
    assert masked["stateKey"] == MASK
    assert masked["datastore"]["config"]["url"] == MASK
    assert masked["sharedSSOConfigs"][0]["oidc"]["clientSecret"] == MASK
    assert masked["sharedSSOConfigs"][0]["oidc"]["clientId"] == "client-id-for-tests"


def test_an_unset_placeholder_is_an_error_naming_the_variable_and_its_place():
    env = dict(SEED_CONTROL_PLANE_ENV)
    del env["DB_PASS"], env["userPoolId"]
    with pytest.raises(ConfigError) as caught:
        load_control_plane_config(SEED / "control-plane-config.yaml", env=env)
    problems = caught.value.errors
    assert [(p.path, p.line, p.col, p.message) for p in problems] == [
        (
            "spec.datastore.config.url",
            7,
            23,
            "environment variable DB_PASS is not set (placeholder ${DB_PASS})",
        ),
        (
            "spec.sharedSSOConfigs[0].oidc.issuer",
            21,
            66,
            "environment variable userPoolId is not set (placeholder ${userPoolId})",
        ),
    ]
    assert "control-plane-config.yaml:7:23: spec.datastore.config.url: environment variable DB_PASS" in str(
        caught.value
    )
