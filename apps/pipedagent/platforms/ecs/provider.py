"""The ECS provider: boto3 for one `platformProviders` entry (region, profile, credentials file, role).

Every AWS call of the ECS stages, the live state and drift detection goes through here (the one module that
imports boto3), so the stages read as the deployment steps they are. `AWS_OPERATIONS` lists every operation
called, for the piped's IAM policy.
Credentials: the default chain, or `profile` / `credentialsFile`, or `roleARN` (+ `tokenFile`: web
identity, as on EKS/ECS with OIDC). `AWS_ENDPOINT_URL` is honoured by botocore itself (the moto server in
tests and the demo). Retries follow PIPED_AWS_MAX_ATTEMPTS (1 in tests: moto answers some bugs with a 500,
and a retried CreateTaskSet would make a second task set).
"""

from __future__ import annotations

import logging
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    AssumeRoleWithWebIdentityCredentialFetcher,
    DeferredRefreshableCredentials,
    FileWebIdentityTokenLoader,
)
from botocore.exceptions import BotoCoreError, ClientError

from ... import metrics
from .. import ProviderError

logger = logging.getLogger(__name__)

# PipeCD's tags on every resource a piped manages (names kept for compatibility).
LABEL_MANAGED_BY = "pipecd-dev-managed-by"
LABEL_PIPED = "pipecd-dev-piped"
LABEL_APPLICATION = "pipecd-dev-application"
LABEL_COMMIT_HASH = "pipecd-dev-commit-hash"
MANAGED_BY_PIPED = "piped"
# Which part a task set plays, in its `externalId` (ECS's own field for the deployment tool's use): the
# canary, or a primary made by a sync, a primary rollout or a rollback. It tells apart two task sets of one
# commit after a crash (SERVICE_DISCOVERY canaries run at 100 % in the same registry as the primary). The
# tags stay PipeCD's four.
EXTERNAL_ID_PREFIX = "pipeportal-"
VARIANT_PRIMARY = "primary"
VARIANT_CANARY = "canary"


def variant_of(task_set: dict) -> str:
    """`primary` or `canary` from the task set's externalId; a task set made without one is a primary."""
    external = str(task_set.get("externalId") or "")
    if external.startswith(EXTERNAL_ID_PREFIX):
        return external[len(EXTERNAL_ID_PREFIX) :]
    return VARIANT_PRIMARY


# AWS's limits on resource tags: 50 per resource, keys up to 128 characters, values up to 256; `aws:` keys
# are reserved for AWS.
MAX_TAGS = 50
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256

# Every AWS operation this provider calls (docs/ecs.md; the piped's IAM policy needs these and no more).
AWS_OPERATIONS = (
    "ecs:ListTaskDefinitions",
    "ecs:DescribeTaskDefinition",
    "ecs:RegisterTaskDefinition",
    "ecs:DescribeServices",
    "ecs:CreateService",
    "ecs:UpdateService",
    "ecs:ListTagsForResource",
    "ecs:TagResource",
    "ecs:UntagResource",
    "ecs:DescribeTaskSets",
    "ecs:CreateTaskSet",
    "ecs:UpdateTaskSet",
    "ecs:UpdateServicePrimaryTaskSet",
    "ecs:DeleteTaskSet",
    "ecs:RunTask",
    "ecs:ListTasks",
    "ecs:DescribeTasks",
    "ecs:StopTask",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:ModifyListener",
    "elasticloadbalancing:ModifyRule",
)

# CreateService/UpdateService keys that belong to task sets when the deployment controller is EXTERNAL.
TASK_SET_KEYS = frozenset(
    {
        "taskDefinition",
        "loadBalancers",
        "networkConfiguration",
        "launchType",
        "capacityProviderStrategy",
        "serviceRegistries",
        "platformVersion",
    }
)
# What UpdateService accepts for a service with the EXTERNAL deployment controller.
UPDATABLE_KEYS = frozenset(
    {
        "desiredCount",
        "placementConstraints",
        "placementStrategy",
        "healthCheckGracePeriodSeconds",
        "enableECSManagedTags",
        "propagateTags",
        "deploymentConfiguration",
        "enableExecuteCommand",
    }
)


def aws_error(call: str, exc: Exception) -> ProviderError:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return ProviderError(f"{call}: {error.get('Code', 'Error')}: {error.get('Message', str(exc))}")
    return ProviderError(f"{call}: {exc}")


def tag_list(tags: dict[str, str]) -> list[dict]:
    return [{"key": k, "value": v} for k, v in tags.items()]


def tag_dict(tags: list[dict] | None) -> dict[str, str]:
    return {t["key"]: t.get("value", "") for t in tags or []}


def managed_tags(piped_id: str, application_id: str, commit: str) -> dict[str, str]:
    return {
        LABEL_MANAGED_BY: MANAGED_BY_PIPED,
        LABEL_PIPED: piped_id,
        LABEL_APPLICATION: application_id,
        LABEL_COMMIT_HASH: commit,
    }


def allowed_tags(tags: dict[str, str], managed: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """`tags` within AWS's limits, the managed tags always kept. Answers (tags, what was left out and why)."""
    kept: dict[str, str] = {}
    dropped = []
    room = MAX_TAGS - len(managed)
    for key, value in tags.items():
        if key in managed:
            continue
        if key.lower().startswith("aws:"):
            dropped.append(f"{key} (the aws: prefix is reserved for AWS)")
        elif len(key) > MAX_TAG_KEY or len(str(value)) > MAX_TAG_VALUE:
            dropped.append(f"{key} (longer than AWS allows)")
        elif len(kept) >= room:
            dropped.append(f"{key} (AWS allows {MAX_TAGS} tags per resource)")
        else:
            kept[key] = str(value)
    return {**kept, **managed}, dropped


def is_managed_by(tags: dict[str, str], piped_id: str) -> bool:
    return tags.get(LABEL_MANAGED_BY) == MANAGED_BY_PIPED and tags.get(LABEL_PIPED) == piped_id


def short_name(arn: str) -> str:
    """The readable part of an ARN: `task-definition/web:3` → `web:3`, `cluster/demo` → `demo`,
    `targetgroup/web-blue/0123abcd` → `web-blue`, `loadbalancer/app/web/0123abcd` → `web`."""
    arn = arn or ""
    for kind in (":targetgroup/", ":loadbalancer/app/", ":loadbalancer/net/"):
        if kind in arn:
            return arn.split(kind, 1)[1].split("/", 1)[0]
    return arn.rsplit("/", 1)[-1]


class ECSProvider:
    def __init__(self, name: str, config: Any, knobs: Any):
        self.name = name
        self.region = config.region
        session = botocore.session.Session(profile=config.profile or None)
        if config.credentials_file:
            session.set_config_variable("credentials_file", config.credentials_file)
        if config.role_arn:
            base = boto3.Session(
                botocore_session=botocore.session.Session(profile=config.profile or None),
                region_name=self.region,
            )
            if config.token_file:
                fetcher = AssumeRoleWithWebIdentityCredentialFetcher(
                    client_creator=base.client,
                    web_identity_token_loader=FileWebIdentityTokenLoader(config.token_file),
                    role_arn=config.role_arn,
                )
                method = "assume-role-with-web-identity"
            else:
                fetcher = AssumeRoleCredentialFetcher(
                    client_creator=base.client,
                    source_credentials=base.get_credentials(),
                    role_arn=config.role_arn,
                )
                method = "assume-role"
            session._credentials = DeferredRefreshableCredentials(
                method=method, refresh_using=fetcher.fetch_credentials
            )
        self._session = boto3.Session(botocore_session=session, region_name=self.region)
        self._config = Config(
            retries={"total_max_attempts": max(int(knobs.aws_max_attempts), 1), "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
        )
        self._ecs = None
        self._elbv2 = None

    @property
    def ecs(self) -> Any:
        if self._ecs is None:
            self._ecs = metrics.instrument_aws_client(self._session.client("ecs", config=self._config))
        return self._ecs

    @property
    def elbv2(self) -> Any:
        if self._elbv2 is None:
            self._elbv2 = metrics.instrument_aws_client(self._session.client("elbv2", config=self._config))
        return self._elbv2

    def _call(self, call: str, fn, **kwargs) -> Any:
        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise aws_error(call, exc) from None

    # --- Task definitions ---

    def find_task_definition(
        self, family: str, wanted_tags: dict[str, str], *, look_at: int = 5
    ) -> dict | None:
        """The newest of the family's last few revisions carrying all `wanted_tags` (one revision per commit)."""
        listed = self._call(
            "ListTaskDefinitions",
            self.ecs.list_task_definitions,
            familyPrefix=family,
            status="ACTIVE",
            sort="DESC",
            maxResults=look_at,
        )
        for arn in listed.get("taskDefinitionArns", [])[:look_at]:
            if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] != family:
                continue
            described = self._call(
                "DescribeTaskDefinition",
                self.ecs.describe_task_definition,
                taskDefinition=arn,
                include=["TAGS"],
            )
            tags = tag_dict(described.get("tags"))
            if all(tags.get(k) == v for k, v in wanted_tags.items()):
                return described["taskDefinition"]
        return None

    def register_task_definition(self, task: dict, tags: dict[str, str]) -> dict:
        merged = {**tag_dict(task.get("tags")), **tags}
        return self._call(
            "RegisterTaskDefinition",
            self.ecs.register_task_definition,
            **{**task, "tags": tag_list(merged)},
        )["taskDefinition"]

    def describe_task_definition(self, arn: str) -> tuple[dict, dict[str, str]] | None:
        """The task definition and its tags; None when AWS does not know it."""
        try:
            answer = self.ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("ClientException", "InvalidParameterException"):
                return None
            raise aws_error("DescribeTaskDefinition", exc) from None
        except BotoCoreError as exc:
            raise aws_error("DescribeTaskDefinition", exc) from None
        return answer["taskDefinition"], tag_dict(answer.get("tags"))

    # --- Services ---

    def describe_service(self, cluster: str, service: str) -> dict | None:
        """The service when it exists and is ACTIVE (DRAINING/INACTIVE ones count as gone)."""
        answer = self._call(
            "DescribeServices",
            self.ecs.describe_services,
            cluster=cluster,
            services=[service],
            include=["TAGS"],
        )
        for item in answer.get("services", []):
            if item.get("status") == "ACTIVE":
                return item
        return None

    def create_service(self, service_input: dict, client_token: str) -> dict:
        return self._call(
            "CreateService", self.ecs.create_service, **service_input, clientToken=client_token
        )["service"]

    def update_service(self, cluster: str, service: str, fields: dict) -> dict:
        return self._call(
            "UpdateService", self.ecs.update_service, cluster=cluster, service=service, **fields
        )["service"]

    def sync_tags(self, arn: str, desired: dict[str, str]) -> tuple[list[str], list[str]]:
        """Make the resource's tags `desired` (AWS's own `aws:` tags aside). Answers (set keys, removed keys)."""
        current = tag_dict(
            self._call("ListTagsForResource", self.ecs.list_tags_for_resource, resourceArn=arn).get("tags")
        )
        stale = [k for k in current if k not in desired and not k.startswith("aws:")]
        changed = [k for k, v in desired.items() if current.get(k) != v]
        if changed:
            self._call(
                "TagResource",
                self.ecs.tag_resource,
                resourceArn=arn,
                tags=tag_list({k: desired[k] for k in changed}),
            )
        if stale:
            self._call("UntagResource", self.ecs.untag_resource, resourceArn=arn, tagKeys=stale)
        return changed, stale

    # --- Task sets ---

    def task_sets(self, cluster: str, service: str, *, draining: bool = False) -> list[dict]:
        """The service's PRIMARY and ACTIVE task sets (and DRAINING ones when asked), with their tags."""
        answer = self._call(
            "DescribeTaskSets",
            self.ecs.describe_task_sets,
            cluster=cluster,
            service=service,
            include=["TAGS"],
        )
        wanted = ("PRIMARY", "ACTIVE", "DRAINING") if draining else ("PRIMARY", "ACTIVE")
        return [t for t in answer.get("taskSets", []) if t.get("status") in wanted]

    def task_set(self, cluster: str, service: str, arn: str) -> dict | None:
        answer = self._call(
            "DescribeTaskSets",
            self.ecs.describe_task_sets,
            cluster=cluster,
            service=service,
            taskSets=[arn],
            include=["TAGS"],
        )
        return next(iter(answer.get("taskSets", [])), None)

    def create_task_set(self, task_set_input: dict, client_token: str) -> dict:
        return self._call(
            "CreateTaskSet", self.ecs.create_task_set, **task_set_input, clientToken=client_token
        )["taskSet"]

    def make_primary(self, cluster: str, service: str, arn: str) -> None:
        self._call(
            "UpdateServicePrimaryTaskSet",
            self.ecs.update_service_primary_task_set,
            cluster=cluster,
            service=service,
            primaryTaskSet=arn,
        )

    def set_task_set_scale(self, cluster: str, service: str, arn: str, percent: float) -> dict:
        return self._call(
            "UpdateTaskSet",
            self.ecs.update_task_set,
            cluster=cluster,
            service=service,
            taskSet=arn,
            scale={"unit": "PERCENT", "value": float(percent)},
        )["taskSet"]

    def delete_task_set(self, cluster: str, service: str, arn: str) -> None:
        try:
            self.ecs.delete_task_set(cluster=cluster, service=service, taskSet=arn, force=True)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("TaskSetNotFoundException",):
                return
            raise aws_error("DeleteTaskSet", exc) from None
        except BotoCoreError as exc:
            raise aws_error("DeleteTaskSet", exc) from None

    # --- Standalone tasks ---

    def run_task(self, run_input: dict, client_token: str) -> dict:
        return self._call("RunTask", self.ecs.run_task, **run_input, clientToken=client_token)

    # --- Tasks ---

    def tasks(self, cluster: str, *, service: str = "", family: str = "", limit: int = 500) -> list[dict]:
        """Running (or stopping) tasks of a service or a task definition family, at most `limit`."""
        selector = {"serviceName": service} if service else {"family": family}
        arns: list[str] = []
        try:
            for page in self.ecs.get_paginator("list_tasks").paginate(cluster=cluster, **selector):
                arns.extend(page.get("taskArns", []))
                if len(arns) >= limit:
                    break
        except (ClientError, BotoCoreError) as exc:
            raise aws_error("ListTasks", exc) from None
        described: list[dict] = []
        for start in range(0, min(len(arns), limit), 100):
            answer = self._call(
                "DescribeTasks", self.ecs.describe_tasks, cluster=cluster, tasks=arns[start : start + 100]
            )
            described.extend(answer.get("tasks", []))
        return described

    def stop_task(self, cluster: str, arn: str, reason: str) -> None:
        self._call("StopTask", self.ecs.stop_task, cluster=cluster, task=arn, reason=reason[:255])

    # --- Load balancers (ELBv2) ---

    def target_groups(self, arns: list[str]) -> list[dict]:
        """The target groups that exist among `arns` (an unknown one is simply missing from the answer)."""
        found = []
        for arn in dict.fromkeys(a for a in arns if a):
            try:
                answer = self.elbv2.describe_target_groups(TargetGroupArns=[arn])
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "TargetGroupNotFound":
                    continue
                raise aws_error("DescribeTargetGroups", exc) from None
            except BotoCoreError as exc:
                raise aws_error("DescribeTargetGroups", exc) from None
            found.extend(answer.get("TargetGroups", []))
        return found

    def listeners(self, load_balancer_arn: str) -> list[dict]:
        out: list[dict] = []
        try:
            for page in self.elbv2.get_paginator("describe_listeners").paginate(
                LoadBalancerArn=load_balancer_arn
            ):
                out.extend(page.get("Listeners", []))
        except (ClientError, BotoCoreError) as exc:
            raise aws_error("DescribeListeners", exc) from None
        return out

    def rules(self, listener_arn: str) -> list[dict]:
        out: list[dict] = []
        try:
            for page in self.elbv2.get_paginator("describe_rules").paginate(ListenerArn=listener_arn):
                out.extend(page.get("Rules", []))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ListenerNotFound":
                return []
            raise aws_error("DescribeRules", exc) from None
        except BotoCoreError as exc:
            raise aws_error("DescribeRules", exc) from None
        return out

    def set_listener_default_actions(self, listener_arn: str, actions: list[dict]) -> None:
        self._call(
            "ModifyListener", self.elbv2.modify_listener, ListenerArn=listener_arn, DefaultActions=actions
        )

    def set_rule_actions(self, rule_arn: str, actions: list[dict]) -> None:
        self._call("ModifyRule", self.elbv2.modify_rule, RuleArn=rule_arn, Actions=actions)
