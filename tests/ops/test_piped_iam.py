"""The piped's IAM policy (deploy/ecs/piped.yaml) grants exactly the AWS operations the code calls.

The operations are read from the code itself: every method of the provider's boto3 clients
(`self.ecs.<method>`, `self.elbv2.<method>`, `get_paginator("<method>")`) is found in the AST of
apps/pipedagent/platforms/ecs/provider.py and mapped to its operation name through botocore's service model,
so a new call cannot be added without `AWS_OPERATIONS` and the template's policy following it.
"""

import ast
import re
from pathlib import Path

import botocore.session
import pytest
from botocore import xform_name
from cfnlint.decode import decode

from apps.pipedagent.platforms.ecs.provider import AWS_OPERATIONS

from .conftest import ROOT

PIPED_APP = ROOT / "apps" / "pipedagent"
PROVIDER = PIPED_APP / "platforms" / "ecs" / "provider.py"
# The provider's client properties and the boto3 service each one is.
CLIENTS = {"ecs": "ecs", "elbv2": "elbv2"}
# The prefixes the piped's task role grants; iam:PassRole is checked on its own.
GRANTED_PREFIXES = ("ecs:", "elasticloadbalancing:")


def _is_client(node: ast.AST) -> bool:
    """`self.ecs` / `self.elbv2`."""
    return (
        isinstance(node, ast.Attribute)
        and node.attr in CLIENTS
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )


def operations_in(path: Path) -> set[str]:
    """The IAM actions (`ecs:RegisterTaskDefinition`, …) of every client method `path` calls."""
    session = botocore.session.get_session()
    models = {name: session.get_service_model(service) for name, service in CLIENTS.items()}
    methods = {name: {xform_name(op): op for op in model.operation_names} for name, model in models.items()}
    tree = ast.parse(path.read_text(), filename=str(path))
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    found: set[str] = set()
    problems: list[str] = []
    for node in ast.walk(tree):
        if not _is_client(node):
            continue
        client = node.attr
        use = parents.get(node)
        if not isinstance(use, ast.Attribute):
            # `client = self.ecs` would hide the calls made through `client` from this scan.
            problems.append(f"line {node.lineno}: self.{client} is used other than as self.{client}.<method>")
            continue
        method = use.attr
        if method == "get_paginator":
            call = parents.get(use)
            if not (
                isinstance(call, ast.Call)
                and call.args
                and isinstance(call.args[0], ast.Constant)
                and isinstance(call.args[0].value, str)
            ):
                problems.append(f"line {use.lineno}: get_paginator needs the operation as a string literal")
                continue
            method = call.args[0].value
        operation = methods[client].get(method)
        if operation is None:
            problems.append(
                f"line {use.lineno}: self.{client}.{method} is not an operation of {CLIENTS[client]}"
            )
            continue
        # The IAM prefix of these services is their signing name (ecs, elasticloadbalancing).
        found.add(f"{models[client].signing_name}:{operation}")
    assert not problems, "\n".join(problems)
    return found


def test_aws_operations_lists_every_call_the_provider_makes_and_no_other():
    called = operations_in(PROVIDER)
    assert len(called) > 10  # the scan sees the calls (an empty set would prove nothing)
    assert sorted(called - set(AWS_OPERATIONS)) == [], "called but missing from AWS_OPERATIONS"
    assert sorted(set(AWS_OPERATIONS) - called) == [], "in AWS_OPERATIONS but never called"
    assert len(AWS_OPERATIONS) == len(set(AWS_OPERATIONS))


def test_the_scan_sees_a_new_call_and_refuses_a_hidden_one(tmp_path):
    added = tmp_path / "provider.py"
    added.write_text(
        PROVIDER.read_text()
        + "\n\ndef _more(self):\n    self.ecs.deregister_task_definition(taskDefinition='x')\n"
        + "    self.elbv2.get_paginator('describe_target_health')\n"
    )
    assert operations_in(added) - operations_in(PROVIDER) == {
        "ecs:DeregisterTaskDefinition",
        "elasticloadbalancing:DescribeTargetHealth",
    }
    hidden = tmp_path / "hidden.py"
    hidden.write_text("def f(self):\n    client = self.ecs\n    client.list_clusters()\n")
    with pytest.raises(AssertionError, match=r"line 2: self\.ecs is used other than"):
        operations_in(hidden)
    typo = tmp_path / "typo.py"
    typo.write_text("def f(self):\n    self.ecs.create_taskset()\n")
    with pytest.raises(AssertionError, match=r"self\.ecs\.create_taskset is not an operation of ecs"):
        operations_in(typo)


def test_no_other_piped_module_calls_aws_itself():
    """The provider is the only way to AWS: no other module of the piped imports boto3 or reaches its clients."""
    offenders = []
    for path in sorted(PIPED_APP.rglob("*.py")):
        if path == PROVIDER:
            continue
        relative = path.relative_to(ROOT)
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [f"{node.module or ''}.{alias.name}".strip(".") for alias in node.names]
            else:
                modules = []
            for module in modules:
                if module.split(".")[0] in ("boto3", "botocore") and not relative.match("*/ecs/emulator.py"):
                    offenders.append(f"{relative}:{node.lineno} imports {module}")
                if "emulator" in module.split(".") and not relative.match("*/management/commands/demo.py"):
                    # The emulator makes the demo's resources in moto; the piped never uses it.
                    offenders.append(f"{relative}:{node.lineno} imports the emulator")
            if isinstance(node, ast.Attribute) and node.attr in CLIENTS:
                offenders.append(f"{relative}:{node.lineno} reaches the provider's .{node.attr}")
    assert offenders == []


def task_role_statements() -> list[dict]:
    template, matches = decode(str(ROOT / "deploy" / "ecs" / "piped.yaml"))
    assert not matches, matches
    role = template["Resources"]["TaskRole"]["Properties"]
    assert "ManagedPolicyArns" not in role, "a managed policy would grant more than the code uses"
    return [statement for policy in role["Policies"] for statement in policy["PolicyDocument"]["Statement"]]


def actions_of(statement: dict) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def test_the_piped_task_role_grants_exactly_the_operations_the_code_calls():
    statements = task_role_statements()
    assert all(statement["Effect"] == "Allow" for statement in statements)
    granted = [action for statement in statements for action in actions_of(statement)]
    assert not [action for action in granted if "*" in action], "no wildcard actions"
    service_actions = [action for action in granted if action.startswith(GRANTED_PREFIXES)]
    assert len(service_actions) == len(set(service_actions)), "an action is granted twice"
    called = operations_in(PROVIDER)
    assert sorted(set(service_actions) - called) == [], "granted but never called: remove from piped.yaml"
    assert sorted(called - set(service_actions)) == [], "called but not granted: add to piped.yaml"
    # Nothing else but iam:PassRole, and that only for the applications' roles, only towards ECS tasks.
    assert sorted(set(granted) - set(service_actions)) == ["iam:PassRole"]
    (pass_role,) = [statement for statement in statements if "iam:PassRole" in actions_of(statement)]
    assert actions_of(pass_role) == ["iam:PassRole"]
    assert pass_role["Resource"] == {"Ref": "PassableRoleArns"}
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}


@pytest.mark.parametrize(
    "doc, heading",
    [("docs/deploy-ecs.md", "## 5. The piped"), ("docs/ecs.md", "## AWS permissions")],
)
def test_the_docs_list_the_same_permissions(doc, heading):
    text = (ROOT / doc).read_text()
    section = text[text.index(heading) :]
    # The first code block of the section that names permissions.
    block = next(part for part in section.split("```")[1::2] if "elasticloadbalancing:" in part)
    listed = re.findall(r"\b(?:ecs|elasticloadbalancing):[A-Za-z]+", block)
    assert sorted(listed) == sorted(AWS_OPERATIONS)
