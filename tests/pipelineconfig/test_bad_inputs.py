"""The issue's table of bad inputs: each is refused with a message that names the file, line, column and key."""

import base64
import textwrap

import pytest

from apps.pipelineconfig import ConfigError, load_app_config, load_ecs_definitions, load_piped_config
from apps.pipelineconfig.ecsdefs import load_definition

KEY = base64.b64encode(b"key").decode()

APP_HEAD = """\
apiVersion: pipecd.dev/v1beta1
kind: ECSApp
spec:
"""


def app(body: str) -> str:
    return APP_HEAD + textwrap.indent(textwrap.dedent(body), "  ")


def piped(body: str) -> str:
    return (
        "apiVersion: pipecd.dev/v1beta1\nkind: Piped\nspec:\n"
        + "  projectID: p\n  pipedID: x\n  apiAddress: cp.example.test:443\n"
        + textwrap.indent(textwrap.dedent(body), "  ")
    )


CASES = [
    (
        "yaml syntax error",
        "app",
        APP_HEAD + "  name: [unclosed\n  labels: {}\n",
        ("", 5, 9, "YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence)"),
    ),
    (
        "wrong kind",
        "app",
        "apiVersion: pipecd.dev/v1beta1\nkind: ECSApplication\nspec: {}\n",
        (
            "kind",
            2,
            7,
            "unknown kind 'ECSApplication' (did you mean 'ECSApp'?); expected an application config",
        ),
    ),
    (
        "a piped config where an app config is expected",
        "app",
        "apiVersion: pipecd.dev/v1beta1\nkind: Piped\nspec: {}\n",
        ("kind", 2, 7, "this is a Piped config; expected an application config (kind ECSApp)"),
    ),
    (
        "wrong apiVersion",
        "app",
        "apiVersion: pipecd.dev/v1\nkind: ECSApp\n",
        ("apiVersion", 1, 13, "expected apiVersion pipecd.dev/v1beta1, got 'pipecd.dev/v1'"),
    ),
    (
        "missing required field",
        "app",
        app(
            """\
            input:
              targetGroups:
                primary:
                  targetGroupArn: arn:aws:elasticloadbalancing:xyz
                  containerName: web
            """
        ),
        ("spec.input.targetGroups.primary.containerPort", 7, 9, "containerPort is required"),
    ),
    (
        "unknown key",
        "app",
        app(
            """\
            name: demo
            pipline:
              stages: []
            """
        ),
        ("spec.pipline", 5, 3, "unknown key 'pipline' (did you mean 'pipeline'?)"),
    ),
    (
        "unknown nested key",
        "app",
        app(
            """\
            trigger:
              onCommit:
                path: [a]
            """
        ),
        ("spec.trigger.onCommit.path", 6, 7, "unknown key 'path' (did you mean 'paths'?)"),
    ),
    (
        "wrong type",
        "app",
        app(
            """\
            input:
              targetGroups:
                primary:
                  targetGroupArn: arn:aws:elasticloadbalancing:xyz
                  containerName: web
                  containerPort: eighty
            """
        ),
        ("spec.input.targetGroups.primary.containerPort", 9, 24, "expected a whole number, got 'eighty'"),
    ),
    (
        "a number where a string is expected",
        "app",
        app("labels:\n  version: 1.10\n"),
        ("spec.labels.version", 5, 14, "expected a string, got 1.1 (put quotes around it)"),
    ),
    (
        "negative percentage",
        "app",
        app(
            """\
            pipeline:
              stages:
                - name: ECS_CANARY_ROLLOUT
                  with:
                    scale: -5
            """
        ),
        (
            "spec.pipeline.stages[0].with.scale",
            8,
            18,
            'expected a percentage from 0 to 100 such as 30, 30.5 or "30%", got -5 (outside 0..100)',
        ),
    ),
    (
        "percentage over 100",
        "app",
        app(
            """\
            pipeline:
              stages:
                - name: ECS_TRAFFIC_ROUTING
                  with:
                    canary: 130%
            """
        ),
        ("spec.pipeline.stages[0].with.canary", 8, 19, "got '130%' (outside 0..100)"),
    ),
    (
        "unknown stage name",
        "app",
        app(
            """\
            pipeline:
              stages:
                - name: ECS_SYNC
                - name: ECS_CANARY_ROLOUT
            """
        ),
        (
            "spec.pipeline.stages[1].name",
            7,
            15,
            "unknown stage name 'ECS_CANARY_ROLOUT' (did you mean 'ECS_CANARY_ROLLOUT'?)",
        ),
    ),
    (
        "a stage without the with: it needs",
        "app",
        app("pipeline:\n  stages:\n    - name: ANALYSIS\n"),
        ("spec.pipeline.stages[0].with", 6, 9, "ANALYSIS needs with: giving duration"),
    ),
    (
        "an option the stage does not take",
        "app",
        app(
            """\
            pipeline:
              stages:
                - name: WAIT
                  with:
                    timeout: 5m
            """
        ),
        ("spec.pipeline.stages[0].with.timeout", 8, 11, "unknown key 'timeout'"),
    ),
    (
        "WAIT_APPROVAL minApproverNum 0",
        "app",
        app(
            """\
            pipeline:
              stages:
                - name: WAIT_APPROVAL
                  with:
                    minApproverNum: 0
            """
        ),
        ("spec.pipeline.stages[0].with.minApproverNum", 8, 27, "minApproverNum must be 1 or more, got 0"),
    ),
    (
        "a duration without unit",
        "app",
        app(
            """\
            pipeline:
              stages:
                - name: WAIT
                  with:
                    duration: 150
            """
        ),
        (
            "spec.pipeline.stages[0].with.duration",
            8,
            21,
            "expected a duration such as 150s, 5m, 1m30s or 6h; the bare number 150 has no unit",
        ),
    ),
    (
        "both pipedKeyData and pipedKeyFile",
        "piped",
        piped(f"pipedKeyData: {KEY}\npipedKeyFile: /etc/piped/key\n"),
        ("spec.pipedKeyFile", 8, 17, "give only one of pipedKeyData and pipedKeyFile, not both"),
    ),
    (
        "neither pipedKeyData nor pipedKeyFile",
        "piped",
        piped("name: x\n"),
        ("spec", 4, 3, "give pipedKeyData (the key, base64) or pipedKeyFile (a file holding the key)"),
    ),
    (
        "pipedKeyData that is not base64",
        "piped",
        piped("pipedKeyData: not base64!\n"),
        ("spec.pipedKeyData", 7, 17, "pipedKeyData must be base64"),
    ),
    (
        "a route to a receiver that does not exist",
        "piped",
        piped(
            f"""\
            pipedKeyData: {KEY}
            notifications:
              routes:
                - name: all
                  receiver: slak
              receivers:
                - name: slack
                  slack:
                    hookURL: https://hooks.slack.test/x
            """
        ),
        (
            "spec.notifications.routes[0].receiver",
            11,
            19,
            "which is not among the receivers (did you mean 'slack'?)",
        ),
    ),
]


def first_error(kind: str, text: str, tmp_path) -> tuple:
    path = tmp_path / "file.yaml"
    path.write_text(text)
    loader = load_app_config if kind == "app" else load_piped_config
    with pytest.raises(ConfigError) as caught:
        loader(path)
    problem = caught.value.errors[0]
    assert problem.file == str(path)
    assert str(problem).startswith(f"{path}:{problem.line}:{problem.col}: ")
    return problem


@pytest.mark.parametrize(("case", "kind", "text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_it_refuses_bad_input_with_a_located_message(case, kind, text, expected, tmp_path):
    problem = first_error(kind, text, tmp_path)
    path, line, col, message = expected
    assert (problem.path, problem.line, problem.col) == (path, line, col), problem
    assert message in problem.message
    assert problem.severity == "error"


def test_it_reports_every_error_of_a_file_not_only_the_first(tmp_path):
    text = app(
        """\
        nmae: demo
        input:
          accessType: ALB
          launchType: fargate
        pipeline:
          stages:
            - name: ECS_CANARY_ROLLOUT
              with:
                scale: 101
            - name: WAIT_APPROVAL
              with:
                minApproverNum: 0
            - name: WAITT
        """
    )
    path = tmp_path / "app.pipecd.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_app_config(path)
    assert [(p.path, p.line) for p in caught.value.errors] == [
        ("spec.nmae", 4),
        ("spec.input.accessType", 6),
        ("spec.input.launchType", 7),
        ("spec.pipeline.stages[0].with.scale", 12),
        ("spec.pipeline.stages[1].with.minApproverNum", 15),
        ("spec.pipeline.stages[2].name", 16),
    ]
    text = str(caught.value)
    assert text.splitlines()[0] == f"6 problems in {path}"
    assert "Traceback" not in text and "pydantic" not in text


def test_a_service_without_the_external_controller_is_refused(tmp_path):
    (tmp_path / "servicedef.yaml").write_text(
        "cluster: c\nserviceName: web\ndesiredCount: 1\ndeploymentController:\n  type: ECS\n"
    )
    (tmp_path / "taskdef.yaml").write_text(
        "family: web\ncontainerDefinitions:\n  - name: web\n    image: nginx\n"
    )
    spec = load_app_config(
        tmp_path / "app.pipecd.yaml",
        text=app("input:\n  serviceDefinitionFile: servicedef.yaml\n  taskDefinitionFile: taskdef.yaml\n"),
    ).spec
    with pytest.raises(ConfigError) as caught:
        load_ecs_definitions(tmp_path, spec)
    [problem] = caught.value.errors
    assert problem.file == str(tmp_path / "servicedef.yaml")
    assert (problem.path, problem.line, problem.col) == ("deploymentController", 5, 3)
    assert problem.message == (
        "deploymentController.type must be EXTERNAL (got type ECS): PipePortal rolls out through task sets"
    )
    assert "servicedef.yaml:5:3: deploymentController: deploymentController.type must be EXTERNAL" in str(
        caught.value
    )


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        (
            "serviceName: web\n",
            "deploymentController",
            "deploymentController.type must be EXTERNAL (got none)",
        ),
        (
            "serviceName: web\ntaskDefinition: web:3\ndeploymentController: {type: EXTERNAL}\n",
            "taskDefinition",
            "taskDefinition is not allowed in a service definition",
        ),
        (
            "serviceName: web\ndeploymentController: {type: EXTERNAL}\nloadBalancers:\n  - targetGroupArn: arn\n",
            "loadBalancers",
            "loadBalancers is not allowed in a service definition: load balancers belong to the task sets",
        ),
        (
            "serviceName: web\ndeploymentController: {type: EXTERNAL}\nlaunchType: fargate\n",
            "launchType",
            "expected one of EC2, FARGATE, EXTERNAL, MANAGED_INSTANCES, got 'fargate' (did you mean 'FARGATE'?)",
        ),
        (
            "serviceName: web\ndeploymentController: {type: EXTERNAL}\ndesiredCount: two\n",
            "desiredCount",
            "expected a whole number, got 'two'",
        ),
        (
            "desiredCount: 1\ndeploymentController: {type: EXTERNAL}\n",
            "",
            "serviceName is required (CreateServiceRequest)",
        ),
        (
            "serviceName: web\ncluster: a\nclusterArn: b\ndeploymentController: {type: EXTERNAL}\n",
            "clusterArn",
            "give only one of clusterArn and cluster",
        ),
    ],
)
def test_service_definition_restrictions(body, path, message, tmp_path):
    file = tmp_path / "servicedef.yaml"
    file.write_text(body)
    _, problems = load_definition(file, "service")
    errors = [p for p in problems if p.is_error]
    assert errors, problems
    assert (errors[0].path, errors[0].file) == (path, str(file))
    assert message in errors[0].message
