"""PipeCD's own files (tests/pipelineconfig/fixtures/pipecd, Apache-2.0) load, with the values and defaults PipeCD gives them."""

import shutil
from datetime import timedelta

import pytest

from apps.pipelineconfig import (
    ConfigError,
    load_app_config,
    load_control_plane_config,
    load_ecs_definitions,
    load_file,
    load_piped_config,
    validate_app_dir,
)

from .conftest import EXAMPLES, PIPECD, TESTDATA

APP = TESTDATA / "application"


def test_it_loads_every_conformance_file_but_the_invalid_one():
    configs = sorted(
        p
        for p in PIPECD.rglob("*.yaml")
        if p.name in ("app.pipecd.yaml",) or "pkg/config/testdata" in p.as_posix()
    )
    assert len(configs) == 22
    for path in configs:
        if path.name == "ecs-app-invalid-access-type.yaml":
            continue
        loaded = load_file(path)
        assert loaded.spec is not None, path


def test_it_rejects_the_invalid_access_type_naming_accesstype():
    path = APP / "ecs-app-invalid-access-type.yaml"
    with pytest.raises(ConfigError) as caught:
        load_app_config(path)
    [problem] = caught.value.errors
    assert problem.path == "spec.input.accessType"
    assert (problem.line, problem.col) == (7, 17)
    assert problem.message == "expected 'ELB' or 'SERVICE_DISCOVERY', got 'XXX'"
    assert "spec.input.accessType: expected 'ELB' or 'SERVICE_DISCOVERY'" in str(caught.value)


# --- testdata/pkg/config/testdata/application -----------------------------------------------------------


def test_ecs_app_reads_target_group_and_defaults():
    spec = load_app_config(APP / "ecs-app.yaml").spec
    assert spec.kind == "ECSApp"
    assert spec.input.service_definition_file == "/path/to/servicedef.yaml"
    assert spec.input.task_definition_file == "/path/to/taskdef.yaml"
    primary = spec.input.target_groups.primary
    assert (primary.target_group_arn, primary.container_name, primary.container_port) == (
        "arn:aws:elasticloadbalancing:xyz",
        "web",
        80,
    )
    assert spec.input.target_groups.canary is None
    # PipeCD's defaults.
    assert spec.input.access_type == "ELB"
    assert spec.input.launch_type == "FARGATE"
    assert spec.input.auto_rollback is True
    assert spec.input.run_standalone_task is True
    assert spec.timeout == timedelta(hours=6)
    assert spec.trigger.on_out_of_sync.disabled is True
    assert spec.trigger.on_out_of_sync.min_window == timedelta(minutes=5)
    assert spec.trigger.on_chain.disabled is True
    assert spec.trigger.on_commit.disabled is False
    assert spec.planner.always_use_pipeline is False
    assert spec.planner.auto_rollback is True
    assert spec.quick_sync.recreate is False
    assert spec.pipeline is None
    assert spec.input.is_standalone_task is False


def test_ecs_app_service_discovery():
    spec = load_app_config(APP / "ecs-app-service-discovery.yaml").spec
    assert spec.input.access_type == "SERVICE_DISCOVERY"
    assert spec.input.target_groups.primary is None


def test_generic_analysis_reads_metrics_logs_and_https():
    loaded = load_app_config(APP / "generic-analysis.yaml")
    spec = loaded.spec
    assert loaded.kind == "KubernetesApp"
    assert spec.unsupported_reason.startswith("KubernetesApp applications are not supported yet")
    metrics, logs, https = (stage.options for stage in spec.pipeline.stages)
    assert [s.name for s in spec.pipeline.stages] == ["ANALYSIS"] * 3
    assert metrics.duration == timedelta(minutes=10)
    first, second = metrics.metrics
    assert (first.query, first.expected.max, first.expected.min) == ("grpc_error_percentage", 0.1, None)
    assert (first.interval, first.failure_limit, first.provider) == (
        timedelta(minutes=1),
        1,
        "prometheus-dev",
    )
    assert (first.strategy, first.deviation, first.timeout) == ("THRESHOLD", "EITHER", timedelta(seconds=30))
    assert second.expected.min == 0.9
    [log] = logs.logs
    assert log.query == 'resource.labels.pod_id="pod1"\n'
    assert (log.failure_limit, log.provider) == (3, "stackdriver-dev")
    [check] = https.https
    assert (check.url, check.method, check.expected_code) == ("https://canary-endpoint.dev", "GET", 200)
    assert check.interval == timedelta(minutes=1)
    assert spec.pipeline.stage_id(2) == "stage-2"


def test_generic_postsync_reads_the_chain():
    spec = load_app_config(APP / "generic-postsync.yaml").spec
    apps = spec.post_sync.chain.applications
    assert [(a.name, a.labels, a.kind) for a in apps] == [
        ("app-1", {}, ""),
        ("", {"env": "staging", "foo": "bar"}, ""),
        ("", {}, "ECSApp"),
    ]


def test_generic_trigger_reads_paths():
    spec = load_app_config(APP / "generic-trigger.yaml").spec
    assert spec.trigger.on_commit.paths == ["deployment.yaml"]
    assert spec.trigger.on_commit.ignores == []
    assert spec.trigger.on_command.disabled is False


@pytest.mark.parametrize(
    ("name", "out_of_sync_disabled", "auto_rollback"),
    [
        ("truebydefaultbool-not-specified.yaml", True, True),
        ("truebydefaultbool-true-explicitly.yaml", True, True),
        ("truebydefaultbool-false-explicitly.yaml", False, False),
    ],
)
def test_booleans_that_default_to_true(name, out_of_sync_disabled, auto_rollback):
    spec = load_app_config(APP / name).spec
    assert spec.trigger.on_out_of_sync.disabled is out_of_sync_disabled
    assert spec.trigger.on_chain.disabled is True
    # A KubernetesApp's input is kept as given; its autoRollback still counts.
    assert spec.auto_rollback is auto_rollback


# --- examples/ecs ---------------------------------------------------------------------------------------


def test_example_simple_and_its_definitions():
    spec = load_app_config(EXAMPLES / "simple" / "app.pipecd.yaml").spec
    assert spec.name == "simple"
    assert spec.labels == {"env": "example", "team": "xyz"}
    assert spec.description.startswith("This app demonstrates how to deploy an ECS application")
    assert spec.pipeline is None
    definitions = load_ecs_definitions(EXAMPLES / "simple", spec)
    assert definitions.warnings == []
    assert definitions.service["cluster"] == "arn:aws:ecs:ap-northeast-1:XXXX:cluster/test-cluster"
    assert definitions.service["deploymentController"] == {"type": "EXTERNAL"}
    assert definitions.service["desiredCount"] == 2
    task = definitions.task
    assert (task["cpu"], task["memory"]) == ("256", "512")  # numbers in the file, strings for AWS
    assert "pidMode" not in task  # "" dropped
    assert "command" not in task["containerDefinitions"][0]  # null dropped
    assert task["containerDefinitions"][0]["portMappings"] == [{"containerPort": 80}]
    assert validate_app_dir(EXAMPLES / "simple", spec) == []


def test_example_canary_pipeline():
    spec = load_app_config(EXAMPLES / "canary" / "app.pipecd.yaml").spec
    stages = spec.pipeline.stages
    assert [s.name for s in stages] == [
        "ECS_CANARY_ROLLOUT",
        "ECS_TRAFFIC_ROUTING",
        "WAIT",
        "ECS_PRIMARY_ROLLOUT",
        "ECS_TRAFFIC_ROUTING",
        "ECS_CANARY_CLEAN",
    ]
    assert stages[0].options.scale == 30
    assert stages[1].options.weights() == (80, 20)
    assert stages[2].options.duration == timedelta(seconds=150)
    assert stages[4].options.weights() == (100, 0)
    assert spec.input.target_groups.canary.target_group_arn.endswith("ecs-canary-green/ZZZZ")
    assert [spec.pipeline.stage_id(i) for i in range(3)] == ["stage-0", "stage-1", "stage-2"]
    assert validate_app_dir(EXAMPLES / "canary", spec) == []


@pytest.mark.parametrize(
    ("removed", "stage_index"),
    [
        ("      - name: ECS_CANARY_ROLLOUT\n        with:\n          scale: 30\n", 0),
        # The canary cleaned before traffic goes to it again.
        ("      - name: WAIT\n", None),
    ],
)
def test_traffic_for_a_canary_nobody_serves_is_a_warning(tmp_path, removed, stage_index):
    shutil.copytree(EXAMPLES / "canary", tmp_path / "canary")
    config = tmp_path / "canary" / "app.pipecd.yaml"
    text = config.read_text()
    assert removed in text
    if stage_index is None:
        text = text.replace(
            removed,
            "      - name: ECS_CANARY_CLEAN\n      - name: ECS_TRAFFIC_ROUTING\n"
            "        with:\n          canary: 50\n" + removed,
        )
        stage_index = 3
    else:
        text = text.replace(removed, "")
    config.write_text(text)
    spec = load_app_config(config).spec
    problems = validate_app_dir(tmp_path / "canary", spec)
    assert [(p.severity, p.path) for p in problems] == [
        ("warning", f"spec.pipeline.stages[{stage_index}].with")
    ]
    assert "no canary task set serves it" in problems[0].message


def test_example_bluegreen_routes_all_traffic_to_canary():
    spec = load_app_config(EXAMPLES / "bluegreen" / "app.pipecd.yaml").spec
    assert spec.pipeline.stages[0].options.scale == 100
    assert spec.pipeline.stages[1].options.weights() == (0, 100)
    assert validate_app_dir(EXAMPLES / "bluegreen", spec) == []


def test_example_secret_management_and_attachment():
    secret = load_app_config(EXAMPLES / "secret-management" / "app.pipecd.yaml").spec
    assert secret.encryption.decryption_targets == ["servicedef.yaml"]
    assert secret.encryption.encrypted_secrets["foo"].startswith("AQClmqFuXZ10F83")
    definitions = load_ecs_definitions(EXAMPLES / "secret-management", secret)
    assert definitions.service["tags"] == [{"key": "FOO", "value": "{{ .encryptedSecrets.foo }}"}]

    attachment = load_app_config(EXAMPLES / "attachment" / "app.pipecd.yaml").spec
    assert attachment.attachment.sources == {"config": "config.yaml"}
    assert attachment.attachment.targets == ["taskdef.yaml"]
    assert attachment.encryption.decryption_targets == ["servicedef.yaml", "config.yaml"]
    definitions = load_ecs_definitions(EXAMPLES / "attachment", attachment)
    # `command:` is a string there; AWS takes a list, so the one value becomes a one-item list, said so.
    assert definitions.task["containerDefinitions"][0]["command"] == ["echo {{ .attachment.config }}"]
    [warning] = definitions.warnings
    assert warning.path == "containerDefinitions[0].command"
    assert warning.file.endswith("attachment/taskdef.yaml")
    assert (warning.line, warning.severity) == (4, "warning")


@pytest.mark.parametrize("example", ["servicediscovery/canary", "servicediscovery/simple"])
def test_examples_service_discovery(example):
    spec = load_app_config(EXAMPLES / example / "app.pipecd.yaml").spec
    assert spec.input.access_type == "SERVICE_DISCOVERY"
    definitions = load_ecs_definitions(EXAMPLES / example, spec)
    if example.endswith("canary"):
        assert definitions.service["serviceRegistries"] == [
            {"registryArn": "arn:aws:servicediscovery:ap-northeast-1:XXXX:service/srv-XXXXX"}
        ]
        assert spec.pipeline.stages[0].name == "ECS_CANARY_ROLLOUT"
    assert validate_app_dir(EXAMPLES / example, spec) == []


@pytest.mark.parametrize(
    ("example", "launch_type", "network_mode", "subnets"),
    [
        ("standalone-task/launch-type/fargate", "FARGATE", "awsvpc", ["subnet-YYYY", "subnet-YYYY"]),
        (
            "standalone-task/launch-type/ec2/network-mode/awsvpc",
            "EC2",
            "awsvpc",
            ["subnet-YYYY", "subnet-YYYY"],
        ),
        ("standalone-task/launch-type/ec2/network-mode/bridge", "EC2", "bridge", None),
    ],
)
def test_examples_standalone_task(example, launch_type, network_mode, subnets):
    spec = load_app_config(EXAMPLES / example / "app.pipecd.yaml").spec
    assert spec.input.is_standalone_task
    assert spec.input.cluster_arn == "arn:aws:ecs:ap-northeast-1:XXXX:cluster/test-cluster"
    assert spec.input.launch_type == launch_type
    vpc = spec.input.awsvpc_configuration
    assert (vpc.subnets if vpc else None) == subnets
    definitions = load_ecs_definitions(EXAMPLES / example, spec)
    assert definitions.service is None
    assert definitions.task["networkMode"] == network_mode
    assert validate_app_dir(EXAMPLES / example, spec) == []


def test_example_fargate_standalone_vpc_configuration():
    spec = load_app_config(EXAMPLES / "standalone-task/launch-type/fargate/app.pipecd.yaml").spec
    assert spec.input.awsvpc_configuration.as_aws() == {
        "subnets": ["subnet-YYYY", "subnet-YYYY"],
        "securityGroups": ["sg-YYYY"],
        "assignPublicIp": "ENABLED",
    }


def test_example_wait_approval_with_deprecated_slack_mentions():
    spec = load_app_config(EXAMPLES / "wait-approval" / "app.pipecd.yaml").spec
    approval = spec.pipeline.stages[2]
    assert approval.name == "WAIT_APPROVAL"
    assert approval.options.timeout == timedelta(hours=6)
    assert approval.options.min_approver_num == 1
    assert approval.options.approvers == []
    assert spec.notification.slack_users_for("DEPLOYMENT_WAIT_APPROVAL") == [
        "slack-user-id-1",
        "slack-user-id-2",
        "slack-user-id-3",
    ]
    assert spec.notification.slack_users_for("DEPLOYMENT_SUCCEEDED") == ["slack-user-id-3"]
    # No definitions beside it: taskdef.json, the default, is missing; pair it with the canary example's.
    [problem] = validate_app_dir(EXAMPLES / "wait-approval", spec)
    assert problem.path == "spec.input.taskDefinitionFile"
    assert "taskdef.json" in problem.message
    canary_input = load_app_config(EXAMPLES / "canary" / "app.pipecd.yaml").spec.input
    paired = spec.model_copy(update={"input": canary_input})
    assert validate_app_dir(EXAMPLES / "canary", paired) == []


# --- PipeCD's ECS provider testdata (definitions only) --------------------------------------------------


def test_platformprovider_definitions_drop_response_only_fields():
    from apps.pipelineconfig.ecsdefs import load_definition

    folder = PIPECD / "testdata/pkg/app/piped/platformprovider/ecs/testdata"
    for name in ("old", "new"):
        task, problems = load_definition(folder / f"{name}_taskdef.yaml", "task")
        assert problems == []
        assert "compatibilities" not in task  # DescribeTaskDefinition's, not RegisterTaskDefinition's
        assert task["requiresCompatibilities"] == ["FARGATE"]
        service, problems = load_definition(folder / f"{name}_servicedef.yaml", "service")
        assert problems == []
        assert service["tags"] == [{"key": "key1", "value": "value1"}, {"key": "key2", "value": "value2"}]
    task, _ = load_definition(folder / "new_taskdef.yaml", "task")
    assert task["containerDefinitions"][0]["image"].endswith("nginx:2")


# --- piped and control plane ----------------------------------------------------------------------------


def test_piped_config_testdata():
    loaded = load_piped_config(TESTDATA / "piped" / "piped-config.yaml")
    spec = loaded.spec
    assert (spec.project_id, spec.piped_id, spec.piped_key_file) == (
        "test-project",
        "test-piped",
        "etc/piped/key",
    )
    assert (spec.api_address, spec.web_address) == ("your-pipecd.domain", "https://your-pipecd.domain")
    assert spec.sync_interval == timedelta(minutes=1)
    assert spec.app_config_sync_interval == timedelta(minutes=1)  # default
    assert (spec.git.username, spec.git.email, spec.git.ssh_key_file) == (
        "username",
        "username@email.com",
        "/etc/piped-secret/ssh-key",
    )
    assert [(r.repo_id, r.remote, r.branch) for r in spec.repositories] == [
        ("repo1", "git@github.com:org/repo1.git", "master"),
        ("repo2", "git@github.com:org/repo2.git", "master"),
    ]
    assert spec.chart_repositories[1].insecure is True
    assert spec.chart_repositories[0].type == "HTTP"
    assert spec.chart_registries[0].type == "OCI"
    assert [(p.name, p.type) for p in spec.platform_providers] == [
        ("kubernetes-default", "KUBERNETES"),
        ("kubernetes-dev", "KUBERNETES"),
        ("terraform", "TERRAFORM"),
        ("cloudrun", "CLOUDRUN"),
        ("lambda", "LAMBDA"),
    ]
    assert spec.platform_provider("terraform").config == {
        "vars": ["project=gcp-project", "region=us-centra1"],
        "driftDetectionEnabled": False,
    }
    assert spec.ecs_providers() == []
    assert [p.type for p in spec.analysis_providers] == ["PROMETHEUS", "DATADOG", "STACKDRIVER"]
    assert spec.analysis_provider("prometheus-dev").config.address == "https://your-prometheus.dev"
    notifications = spec.notifications
    assert [r.name for r in notifications.routes] == [
        "dev-slack",
        "prod-slack",
        "integration-slack",
        "all-events-to-ci",
    ]
    assert notifications.routes[0].labels == {"env": "dev", "team": "pipecd"}
    assert notifications.receiver("hookurl-with-mentioned-accounts").slack.mentioned_accounts == [
        "user1",
        "user2",
    ]
    assert notifications.receiver("integration-slack-api").slack.token() == "token"
    webhook = notifications.receiver("ci-webhook").webhook
    assert (webhook.url, webhook.signature_key, webhook.load_signature_value()) == (
        "https://pipecd.dev/dev-hook",
        "PipeCD-Signature",
        "random-signature-string",
    )
    assert spec.secret_management.type == "KEY_PAIR"
    assert spec.secret_management.config.private_key_file == "/etc/piped-secret/pair-private-key"
    assert spec.event_watcher.check_interval == timedelta(minutes=10)
    assert spec.event_watcher.git_repos[0].includes == ["event-watcher-dev.yaml", "event-watcher-stg.yaml"]
    assert spec.plan_preview.command_handle_timeout == timedelta(minutes=10)
    # The key and credential files it names do not exist here: warnings, not errors.
    assert loaded.warnings
    assert all(w.severity == "warning" and "does not exist" in w.message for w in loaded.warnings)
    assert "spec.pipedKeyFile" in {w.path for w in loaded.warnings}


def test_control_plane_config_testdata():
    spec = load_control_plane_config(TESTDATA / "control-plane" / "control-plane-config.yaml").spec
    [project] = spec.projects
    assert (project.id, project.static_admin.username, project.static_admin.password_hash) == (
        "abc",
        "test-user",
        "test-password",
    )
    [sso] = spec.shared_sso_configs
    assert (sso.name, sso.provider, sso.github.client_id, sso.github.base_url, sso.github.upload_url) == (
        "github",
        "GITHUB",
        "client-id",
        "base-url",
        "upload-url",
    )
    # FIRESTORE and GCS are kept as given…
    assert spec.datastore.type == "FIRESTORE"
    assert spec.datastore.config["namespace"] == "pipecd-test"
    assert spec.filestore_settings() == {
        "type": "GCS",
        "config": {"bucket": "bucket", "credentialsFile": "filestore-credentials-file.json"},
    }
    assert spec.cache.ttl == timedelta(minutes=5)
    assert spec.insight_collector.deployment.enabled is True
    assert spec.insight_collector.deployment.schedule == "0 10 * * *"
    assert spec.insight_collector.application.schedule == "0 * * * *"  # default
    # …and refused when used.
    from apps.pipelineconfig import UnsupportedConfig

    with pytest.raises(UnsupportedConfig, match="datastore type FIRESTORE is not supported"):
        spec.database_settings()
