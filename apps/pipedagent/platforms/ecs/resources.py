"""The ECS resources the stages work with: an application's service as its definitions describe it, its task
definition revision, its task sets, and whether a task set is steady.

Everything here is safe to repeat: the task definition and the task sets are found again by the
`pipecd-dev-*` tags (and a task set's variant by its externalId) before anything is created, and the
creating calls carry a `clientToken` derived from the deployment, the stage and the call.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from apps.core.times import format_seconds
from apps.core.times import read_time as parse_time

from ...executors import FAILURE, Continue, Done, StageContext
from .. import ProviderError
from .provider import (
    EXTERNAL_ID_PREFIX,
    LABEL_APPLICATION,
    LABEL_COMMIT_HASH,
    LABEL_PIPED,
    TASK_SET_KEYS,
    UPDATABLE_KEYS,
    allowed_tags,
    is_managed_by,
    managed_tags,
    short_name,
    tag_dict,
    tag_list,
    variant_of,
)

# Deployment metadata shared by the stages of one deployment (the portal reads them too).
META_TASK_DEFINITION = "ecs_task_definition_arn"
META_CANARY = "ecs_canary"
META_PRIMARY = "ecs_primary"
META_TRAFFIC = "ecs_traffic"


def client_token(ctx: StageContext, what: str) -> str:
    """The same string for the same deployment, stage and call: AWS answers a repeated request once."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"pipeportal/{ctx.deployment_id}/{ctx.stage_id}/{what}"))


@dataclass
class ServiceTarget:
    """What an application's files at one commit say about its ECS service."""

    source: Any
    commit: str
    definitions: Any
    cluster: str = ""
    name: str = ""
    service: dict = field(default_factory=dict)  # CreateService input without the task set's keys
    task_set_part: dict = field(default_factory=dict)  # networkConfiguration, launchType, serviceRegistries…
    service_tags: dict = field(default_factory=dict)  # the service definition's own tags
    controller_asked: str = "EXTERNAL"

    @property
    def spec(self) -> Any:
        return self.source.spec

    @property
    def standalone(self) -> bool:
        return self.definitions.service is None

    @property
    def access_type(self) -> str:
        return self.spec.input.access_type

    @property
    def primary(self) -> Any:
        return self.spec.input.target_groups.primary

    @property
    def canary(self) -> Any:
        return self.spec.input.target_groups.canary

    @property
    def family(self) -> str:
        return str(self.definitions.task.get("family") or "")


def service_target(source: Any, commit: str) -> ServiceTarget:
    definitions = source.ecs_definitions()
    target = ServiceTarget(source=source, commit=commit, definitions=definitions)
    if definitions.service is None:
        target.cluster = source.spec.input.cluster_arn or "default"
        return target
    service = dict(definitions.service)
    target.cluster = service.get("cluster", "default")
    target.name = service["serviceName"]
    target.task_set_part = {key: service.pop(key) for key in list(service) if key in TASK_SET_KEYS}
    target.task_set_part.pop("taskDefinition", None)
    target.controller_asked = (service.get("deploymentController") or {}).get("type", "EXTERNAL")
    service["deploymentController"] = {"type": "EXTERNAL"}
    target.service_tags = tag_dict(service.pop("tags", None))
    target.service = service
    return target


def log_warnings(ctx: StageContext, target: ServiceTarget) -> None:
    for warning in target.definitions.warnings:
        ctx.logger.info(f"Warning: {warning}")


# --- Task definitions -----------------------------------------------------------------------------------


def task_definition(ctx: StageContext, provider, target: ServiceTarget, *, for_deployment: bool) -> str:
    """The task definition revision of `target`'s commit: found again, or registered once.

    `for_deployment`: the revision is the deployment's own (its target commit), remembered in the
    deployment metadata so that every stage of the deployment uses the same one.
    """
    arn = ctx.metadata.get("task_definition_arn")
    if not arn and for_deployment:
        arn = (ctx.deployment.get("metadata") or {}).get(META_TASK_DEFINITION)
        if arn:
            ctx.logger.info(
                f"Using task definition {short_name(arn)}, registered for commit {target.commit[:7]}."
            )
    if not arn:
        app_id = ctx.deployment["application_id"]
        found = provider.find_task_definition(
            target.family, {LABEL_APPLICATION: app_id, LABEL_COMMIT_HASH: target.commit}
        )
        if found is not None:
            arn = found["taskDefinitionArn"]
            ctx.logger.info(
                f"Using task definition {short_name(arn)}, registered for commit {target.commit[:7]}."
            )
        else:
            arn = _register(ctx, provider, target)
    # Remembered before anything uses it (notes go before the next change in AWS): the next steps and stages
    # (and a restart) use this revision, never another; a crash before that finds it again by its tags.
    if for_deployment:
        if (ctx.deployment.get("metadata") or {}).get(META_TASK_DEFINITION) != arn:
            ctx.note_deployment_metadata(**{META_TASK_DEFINITION: arn})
    elif ctx.metadata.get("task_definition_arn") != arn:
        ctx.note_stage_metadata(task_definition_arn=arn)
    return arn


def _register(ctx: StageContext, provider, target: ServiceTarget) -> str:
    managed = managed_tags(ctx.runtime.config.piped_id, ctx.deployment["application_id"], target.commit)
    task = dict(target.definitions.task)
    tags, dropped = allowed_tags(tag_dict(task.pop("tags", None)), managed)
    for item in dropped:
        ctx.logger.info(f"Warning: the task definition's tag {item} was left out.")
    try:
        registered = provider.register_task_definition(task, tags)
    except ProviderError as exc:
        # Accounts still on the old ARN format cannot tag task definitions: register without tags then
        # (the deployment metadata still keeps it to one revision per deployment).
        if "tag" not in str(exc).lower():
            raise
        ctx.logger.info(
            f"Warning: AWS refused the task definition's tags ({exc}); registering it without tags."
        )
        registered = provider.register_task_definition(task, {})
    arn = registered["taskDefinitionArn"]
    ctx.logger.info(f"Registered task definition {short_name(arn)}.")
    return arn


# --- The service ----------------------------------------------------------------------------------------


def apply_service(
    ctx: StageContext, provider, target: ServiceTarget, *, restore_count: int | None = None
) -> Done | None:
    """Create the service (EXTERNAL deployment controller) or update what UpdateService may change, and
    sync its tags. Answers a FAILURE when the existing service cannot be deployed through task sets."""
    if target.controller_asked != "EXTERNAL" and not ctx.metadata.get("controller_warned"):
        ctx.logger.info(
            f"Warning: the service definition asks for the {target.controller_asked} deployment controller; using EXTERNAL."
        )
        ctx.note_stage_metadata(controller_warned=True)
    app_id = ctx.deployment["application_id"]
    managed = managed_tags(ctx.runtime.config.piped_id, app_id, target.commit)
    tags, dropped = allowed_tags(target.service_tags, managed)
    for item in dropped:
        ctx.logger.info(f"Warning: the service's tag {item} was left out.")
    service = dict(target.service)
    desired = service.get("desiredCount")
    existing = provider.describe_service(target.cluster, target.name)
    if existing is None:
        service.setdefault("desiredCount", 0)
        created = provider.create_service({**service, "tags": tag_list(tags)}, client_token(ctx, "service"))
        ctx.logger.info(
            f"Created service {target.name} in cluster {short_name(target.cluster)} "
            f"(desired count {created.get('desiredCount')})."
        )
        return None
    current = (existing.get("deploymentController") or {}).get("type", "ECS")
    if current != "EXTERNAL":
        message = (
            f"Service {target.name} uses the {current} deployment controller; PipePortal deploys through task sets "
            "and needs EXTERNAL. Recreate the service with deploymentController EXTERNAL."
        )
        ctx.logger.error(message)
        return Done(FAILURE, message)
    fields = {key: value for key, value in service.items() if key in UPDATABLE_KEYS}
    if not desired:
        fields.pop("desiredCount", None)
        if restore_count:
            fields["desiredCount"] = restore_count
        else:
            ctx.logger.info(
                "desiredCount is 0 or unset: leaving the running count (and autoscaling) as they are."
            )
    if fields:
        provider.update_service(target.cluster, target.name, fields)
        ctx.logger.info(f"Updated service {target.name} ({', '.join(sorted(fields))}).")
    changed, removed = provider.sync_tags(existing["serviceArn"], tags)
    if changed or removed:
        ctx.logger.info(
            f"Synced the service's tags (set {', '.join(changed) or 'none'}; removed {', '.join(removed) or 'none'})."
        )
    return None


# --- Task sets ------------------------------------------------------------------------------------------


def is_ours(task_set: dict, piped_id: str) -> bool:
    return is_managed_by(tag_dict(task_set.get("tags")), piped_id)


def find_task_set(
    ctx: StageContext,
    provider,
    target: ServiceTarget,
    task_definition_arn: str,
    variant: str,
    *,
    exclude: tuple[str, ...] = (),
    full_scale: bool = False,
) -> dict | None:
    """A live task set of this commit, task definition and variant made by this piped for this application.

    A task set without PipePortal's externalId counts as a primary. `full_scale` asks for one at 100 %.
    """
    piped_id = ctx.runtime.config.piped_id
    for task_set in provider.task_sets(target.cluster, target.name):
        if task_set["taskSetArn"] in exclude:
            continue
        tags = tag_dict(task_set.get("tags"))
        if (
            task_set.get("taskDefinition") == task_definition_arn
            and tags.get(LABEL_COMMIT_HASH) == target.commit
            and tags.get(LABEL_PIPED) == piped_id
            and tags.get(LABEL_APPLICATION) == ctx.deployment["application_id"]
            and variant_of(task_set) == variant
            and (not full_scale or float((task_set.get("scale") or {}).get("value", 0)) >= 100.0)
        ):
            return task_set
    return None


def create_task_set(
    ctx: StageContext,
    provider,
    target: ServiceTarget,
    task_definition_arn: str,
    *,
    variant: str,
    scale: float,
    target_group: Any | None,
    token: str,
) -> dict:
    managed = managed_tags(ctx.runtime.config.piped_id, ctx.deployment["application_id"], target.commit)
    task_set_input = {
        "cluster": target.cluster,
        "service": target.name,
        "taskDefinition": task_definition_arn,
        "scale": {"unit": "PERCENT", "value": float(scale)},
        "externalId": f"{EXTERNAL_ID_PREFIX}{variant}",
        "tags": tag_list(managed),
        **{k: v for k, v in target.task_set_part.items() if k != "loadBalancers"},
    }
    if target_group is not None and target.access_type == "ELB":
        task_set_input["loadBalancers"] = [target_group.as_aws()]
    created = provider.create_task_set(task_set_input, client_token(ctx, token))
    where = ""
    if "loadBalancers" in task_set_input:
        where = f" on target group {short_name(target_group.target_group_arn)}"
    elif task_set_input.get("serviceRegistries"):
        registries = ", ".join(
            short_name(r.get("registryArn", "")) for r in task_set_input["serviceRegistries"]
        )
        where = f" in service registry {registries}"
    ctx.logger.info(
        f"Created task set {short_name(created['taskSetArn'])} ({variant}, {short_name(task_definition_arn)}) "
        f"at {scale:g} %{where}."
    )
    return created


def stable_deadline(ctx: StageContext) -> str:
    return (ctx.now() + timedelta(seconds=ctx.knobs.ecs_stable_timeout)).isoformat()


def wait_until_steady(
    ctx: StageContext, provider, cluster: str, service: str, arn: str
) -> Done | Continue | None:
    """None when the task set is steady; Continue to look again later; a FAILURE when it is gone or the wait
    ran out (stage metadata `stable_deadline`).

    Steady: stabilityStatus STEADY_STATE, no pending tasks in the task set (when AWS reports its counts) nor
    in the service, and at least as many running tasks as the task set should have.
    """
    task_set = provider.task_set(cluster, service, arn)
    if task_set is None or task_set.get("status") not in ("PRIMARY", "ACTIVE"):
        message = f"Task set {short_name(arn)} disappeared from service {service} while waiting for it."
        ctx.logger.error(message)
        return Done(FAILURE, message)
    described = provider.describe_service(cluster, service) or {}
    stability = task_set.get("stabilityStatus", "")
    pending = int(described.get("pendingCount") or 0) + int(task_set.get("pendingCount") or 0)
    wanted = task_set.get("computedDesiredCount")
    running = task_set.get("runningCount")
    short_of = wanted is not None and running is not None and int(running) < int(wanted)
    if stability == "STEADY_STATE" and pending == 0 and not short_of:
        return None
    counts = f"{pending} pending task(s)"
    if wanted is not None and running is not None:
        counts += f", {running} of {wanted} running"
    deadline = parse_time(ctx.metadata.get("stable_deadline"))
    if deadline is not None and ctx.now() > deadline:
        message = (
            f"Task set {short_name(arn)} did not become steady within {format_seconds(ctx.knobs.ecs_stable_timeout)} "
            f"(stabilityStatus {stability or 'unknown'}, {counts})."
        )
        ctx.logger.error(message)
        return Done(FAILURE, message)
    return Continue(ctx.knobs.ecs_poll, f"stabilityStatus {stability}, {counts}")
