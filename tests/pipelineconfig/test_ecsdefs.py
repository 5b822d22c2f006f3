"""Service and task definitions normalised to botocore's input shapes: kept, coerced, dropped, warned about."""

import json

import boto3
import pytest
from botocore.config import Config

from apps.pipelineconfig import ConfigError, load_app_config, load_ecs_definitions
from apps.pipelineconfig.ecsdefs import load_definition

from .conftest import EXAMPLES, SEED

APP = """\
apiVersion: pipecd.dev/v1beta1
kind: ECSApp
spec:
  input:
    serviceDefinitionFile: servicedef.yaml
    taskDefinitionFile: {task}
"""


def definition(write, name: str, text: str, kind: str):
    return load_definition(write(name, text), kind)


def test_it_keeps_what_aws_accepts_and_coerces_numbers_to_aws_strings(write):
    task, problems = definition(
        write,
        "taskdef.yaml",
        """\
family: web
cpu: 256
memory: 0.5e3
requiresCompatibilities: [FARGATE]
containerDefinitions:
  - name: web
    image: nginx:1.27
    essential: "true"
    cpu: 128
    environment:
      - name: EMPTY
        value: ""
      - name: PORT
        value: 8080
    dockerLabels:
      enabled: true
      empty: ""
    logConfiguration:
      logDriver: awslogs
      options:
        awslogs-create-group: true
""",
        "task",
    )
    assert problems == []
    assert task["cpu"] == "256"
    assert task["memory"] == "0.5e3"  # the digits as written, not Python's 500.0
    container = task["containerDefinitions"][0]
    assert container["essential"] is True
    assert container["cpu"] == 128  # AWS wants a number here: kept
    assert container["environment"] == [{"name": "EMPTY", "value": ""}, {"name": "PORT", "value": "8080"}]
    assert container["dockerLabels"] == {"enabled": "true", "empty": ""}
    assert container["logConfiguration"]["options"] == {"awslogs-create-group": "true"}


def test_it_warns_about_keys_aws_does_not_know_with_their_path(write):
    service, problems = definition(
        write,
        "servicedef.yaml",
        """\
cluster: demo
serviceName: web
desiredCont: 2
deploymentController:
  type: EXTERNAL
networkConfiguration:
  awsvpcConfiguration:
    subnets: [subnet-1]
    securityGroup: [sg-1]
""",
        "service",
    )
    assert [(p.severity, p.path, p.line, p.col, p.message) for p in problems] == [
        (
            "warning",
            "desiredCont",
            3,
            1,
            "unknown key 'desiredCont' (did you mean 'desiredCount'?): AWS's CreateServiceRequest has no such "
            "field; ignored",
        ),
        (
            "warning",
            "networkConfiguration.awsvpcConfiguration.securityGroup",
            9,
            5,
            "unknown key 'securityGroup' (did you mean 'securityGroups'?): AWS's AwsVpcConfiguration has no "
            "such field; ignored",
        ),
    ]
    assert "desiredCont" not in service
    assert service["networkConfiguration"] == {"awsvpcConfiguration": {"subnets": ["subnet-1"]}}


def test_it_takes_clusterarn_and_rolearn_for_create_services_cluster_and_role(write):
    service, problems = definition(
        write,
        "servicedef.yaml",
        "clusterArn: arn:cluster\nroleArn: arn:role\nserviceName: web\ndeploymentController: {type: EXTERNAL}\n",
        "service",
    )
    assert problems == []
    assert (service["cluster"], service["role"]) == ("arn:cluster", "arn:role")
    assert "clusterArn" not in service and "roleArn" not in service


def test_it_drops_what_describe_returns_but_create_does_not_take(write):
    exported = {
        "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/web:7",
        "revision": 7,
        "status": "ACTIVE",
        "registeredAt": "2024-01-01T00:00:00Z",
        "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.logging-driver.awslogs"}],
        "family": "web",
        "containerDefinitions": [{"name": "web", "image": "nginx", "command": None}],
    }
    task, problems = definition(write, "taskdef.json", json.dumps(exported, indent="\t"), "task")
    assert problems == []
    assert task == {"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx"}]}


def test_it_reads_json_that_yaml_cannot(write):
    # Tabs before keys stop a YAML parser; a .json file is then read as JSON.
    task, problems = definition(
        write, "taskdef.json", '{\n\t"family": "web",\n\t"containerDefinitions": []\n}', "task"
    )
    assert problems == []
    assert task == {"family": "web", "containerDefinitions": []}
    task, problems = definition(write, "broken.json", '{\n\t"family": "web",\n}', "task")
    assert task is None
    [problem] = problems
    assert (problem.line, problem.col) == (3, 1)
    assert problem.message.startswith("JSON syntax error")


def test_a_wrong_type_in_a_definition_is_an_error_naming_the_file(write):
    _, problems = definition(
        write,
        "taskdef.yaml",
        "family: web\ncontainerDefinitions:\n  - name: web\n    portMappings: {containerPort: 80}\n",
        "task",
    )
    [problem] = problems
    assert problem.file.endswith("taskdef.yaml")
    assert (problem.severity, problem.path, problem.line) == (
        "error",
        "containerDefinitions[0].portMappings",
        4,
    )
    assert problem.message == "expected a list, got a mapping"


def test_load_ecs_definitions_names_the_missing_file(tmp_path):
    (tmp_path / "servicedef.yaml").write_text("serviceName: web\ndeploymentController: {type: EXTERNAL}\n")
    spec = load_app_config(tmp_path / "app.pipecd.yaml", text=APP.format(task="taskdef.yaml")).spec
    with pytest.raises(ConfigError) as caught:
        load_ecs_definitions(tmp_path, spec)
    [problem] = caught.value.errors
    assert problem.file == str(tmp_path / "taskdef.yaml")
    assert problem.message == "the file does not exist"


def test_definition_paths_join_the_app_dir_even_when_absolute(tmp_path):
    # PipeCD joins the app directory and the path as Go's filepath.Join does: "/x" is below the app dir.
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "servicedef.yaml").write_text(
        "serviceName: web\ndeploymentController: {type: EXTERNAL}\n"
    )
    (tmp_path / "defs" / "taskdef.yaml").write_text("family: web\ncontainerDefinitions: []\n")
    text = APP.replace("servicedef.yaml", "/defs/servicedef.yaml").format(task="/defs/taskdef.yaml")
    spec = load_app_config(tmp_path / "app.pipecd.yaml", text=text).spec
    definitions = load_ecs_definitions(tmp_path, spec)
    assert definitions.task_file == str(tmp_path / "defs" / "taskdef.yaml")
    assert definitions.service["serviceName"] == "web"


def test_boto3_takes_the_normalised_definitions_as_they_are(aws):
    """The moto server runs botocore's own parameter validation and ECS's API: the shapes must be right."""
    ecs = boto3.client("ecs", region_name="ap-northeast-1", config=Config(retries={"total_max_attempts": 1}))
    ec2 = boto3.client("ec2", region_name="ap-northeast-1", config=Config(retries={"total_max_attempts": 1}))
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc)["GroupId"]
    ecs.create_cluster(clusterName="sample-cluster")

    spec = load_app_config(SEED / "app.pipecd.yaml").spec
    definitions = load_ecs_definitions(SEED, spec)
    registered = ecs.register_task_definition(**definitions.task)["taskDefinition"]
    assert (registered["family"], registered["cpu"], registered["memory"]) == ("hogehoge", "256", "512")
    service = dict(definitions.service)
    service["cluster"] = "sample-cluster"
    service["networkConfiguration"]["awsvpcConfiguration"].update(subnets=[subnet], securityGroups=[group])
    created = ecs.create_service(**service)["service"]
    assert created["serviceName"] == "hogehoge"
    assert created["deploymentController"] == {"type": "EXTERNAL"}

    example = load_app_config(EXAMPLES / "attachment" / "app.pipecd.yaml").spec
    task = load_ecs_definitions(EXAMPLES / "attachment", example).task
    registered = ecs.register_task_definition(**task)["taskDefinition"]
    assert registered["containerDefinitions"][0]["command"] == ["echo {{ .attachment.config }}"]
