"""The ECS stage executors: ECS_SYNC (quick sync) and ROLLBACK for ECS applications.

ECS_SYNC, in steps that survive a restart (what is done is kept in the stage metadata):
1. register the task definition — at most one revision per commit: the family's recent revisions are
   looked up by the `pipecd-dev-*` tags first;
2. create the service (deploymentController EXTERNAL) or update it (desiredCount 0 or unset leaves the
   running count and autoscaling alone) and sync its tags;
3. create a 100 % task set on the primary target group (found again by tags after a crash; clientToken
   derived from deployment and stage), make it primary;
4. wait until it is steady (our own check: stabilityStatus STEADY_STATE and no pending tasks, with
   PIPED_ECS_STABLE_TIMEOUT_SECONDS) — each look is one short step;
5. delete every other task set this piped manages.
Without a service definition the task definition is run as a standalone task (RunTask), which succeeds
when AWS accepts it with no failures.

ROLLBACK applies the definitions of the last successful deployment's commit the same way. The next issue
refines it (weights back to the primary first) and adds the canary stages as new classes here.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from ...executors import (
    FAILURE,
    SKIPPED,
    SUCCESS,
    Continue,
    Done,
    StageContext,
    StageExecutor,
    format_seconds,
    parse_time,
    register,
)
from .provider import (
    LABEL_APPLICATION,
    LABEL_COMMIT_HASH,
    LABEL_MANAGED_BY,
    LABEL_PIPED,
    MANAGED_BY_PIPED,
    TASK_SET_KEYS,
    UPDATABLE_KEYS,
    managed_tags,
    tag_dict,
    tag_list,
)

APPLIED = "applied"


def client_token(ctx: StageContext, what: str) -> str:
    """The same string for the same deployment, stage and call: AWS answers a repeated request once."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"pipeportal/{ctx.deployment_id}/{ctx.stage_id}/{what}"))


def _short_arn(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def sync(ctx: StageContext, source, commit: str) -> Done | Continue:
    """Bring the service (or standalone task) to the definitions of `source`, one step at a time."""
    if ctx.metadata.get("phase") == APPLIED:
        return _wait_and_clean(ctx)
    provider = ctx.platform_provider()
    piped_id = ctx.runtime.config.piped_id
    app_id = ctx.deployment["application_id"]
    tags = managed_tags(piped_id, app_id, commit)
    definitions = source.ecs_definitions()
    spec = source.spec
    for warning in definitions.warnings:
        ctx.logger.info(f"Warning: {warning}")

    task_definition_arn = ctx.metadata.get("task_definition_arn")
    if not task_definition_arn:
        family = definitions.task.get("family", "")
        found = provider.find_task_definition(family, {LABEL_APPLICATION: app_id, LABEL_COMMIT_HASH: commit})
        if found is not None:
            task_definition_arn = found["taskDefinitionArn"]
            ctx.logger.info(
                f"Using task definition {_short_arn(task_definition_arn)}, registered for commit {commit[:7]}."
            )
        else:
            registered = provider.register_task_definition(definitions.task, tags)
            task_definition_arn = registered["taskDefinitionArn"]
            ctx.logger.info(f"Registered task definition {_short_arn(task_definition_arn)}.")
        ctx.save_stage_metadata(task_definition_arn=task_definition_arn)

    if definitions.service is None:
        return _run_standalone(ctx, provider, spec, task_definition_arn, tags)

    service = dict(definitions.service)
    cluster, name = service.get("cluster", "default"), service["serviceName"]
    task_set_part = {key: service.pop(key) for key in list(service) if key in TASK_SET_KEYS}
    controller = (service.get("deploymentController") or {}).get("type", "EXTERNAL")
    if controller != "EXTERNAL":
        ctx.logger.info(
            f"Warning: the service definition asks for the {controller} deployment controller; using EXTERNAL."
        )
    service["deploymentController"] = {"type": "EXTERNAL"}
    service_tags = {**tag_dict(service.pop("tags", None)), **tags}
    desired = service.get("desiredCount")

    existing = provider.describe_service(cluster, name)
    if existing is None:
        service.setdefault("desiredCount", 0)
        created = provider.create_service(
            {**service, "tags": tag_list(service_tags)}, client_token(ctx, "service")
        )
        ctx.logger.info(
            f"Created service {name} in cluster {_short_arn(cluster)} (desired count {created.get('desiredCount')})."
        )
    else:
        current = (existing.get("deploymentController") or {}).get("type", "ECS")
        if current != "EXTERNAL":
            message = (
                f"Service {name} uses the {current} deployment controller; PipePortal deploys through task sets "
                "and needs EXTERNAL. Recreate the service with deploymentController EXTERNAL."
            )
            ctx.logger.error(message)
            return Done(FAILURE, message)
        fields = {key: value for key, value in service.items() if key in UPDATABLE_KEYS}
        if not desired:
            fields.pop("desiredCount", None)
            ctx.logger.info(
                "desiredCount is 0 or unset: leaving the running count (and autoscaling) as they are."
            )
        if fields:
            provider.update_service(cluster, name, fields)
            ctx.logger.info(f"Updated service {name} ({', '.join(sorted(fields))}).")
        changed, removed = provider.sync_tags(existing["serviceArn"], service_tags)
        if changed or removed:
            ctx.logger.info(
                f"Synced the service's tags (set {', '.join(changed) or 'none'}; removed {', '.join(removed) or 'none'})."
            )

    task_set_arn = ctx.metadata.get("task_set_arn")
    if not task_set_arn:
        for task_set in provider.task_sets(cluster, name):
            ts_tags = tag_dict(task_set.get("tags"))
            if (
                task_set.get("taskDefinition") == task_definition_arn
                and ts_tags.get(LABEL_COMMIT_HASH) == commit
                and ts_tags.get(LABEL_PIPED) == piped_id
            ):
                task_set_arn = task_set["taskSetArn"]
                ctx.logger.info(f"Found task set {_short_arn(task_set_arn)} of this commit; using it.")
                break
    if not task_set_arn:
        task_set_input = {
            "cluster": cluster,
            "service": name,
            "taskDefinition": task_definition_arn,
            "scale": {"unit": "PERCENT", "value": 100.0},
            "tags": tag_list(tags),
            **{k: v for k, v in task_set_part.items() if k != "taskDefinition" and k != "loadBalancers"},
        }
        primary = spec.input.target_groups.primary
        if primary is not None and spec.input.access_type == "ELB":
            task_set_input["loadBalancers"] = [primary.as_aws()]
        elif task_set_part.get("loadBalancers"):
            task_set_input["loadBalancers"] = task_set_part["loadBalancers"]
        created = provider.create_task_set(task_set_input, client_token(ctx, "task-set"))
        task_set_arn = created["taskSetArn"]
        target = (
            f" on target group {_short_arn(primary.target_group_arn)}"
            if "loadBalancers" in task_set_input and primary
            else ""
        )
        ctx.logger.info(f"Created task set {_short_arn(task_set_arn)} at 100 %{target}.")
        ctx.save_stage_metadata(task_set_arn=task_set_arn)
    provider.make_primary(cluster, name, task_set_arn)
    ctx.logger.info(f"Task set {_short_arn(task_set_arn)} is now the primary task set of {name}.")
    deadline = ctx.now() + timedelta(seconds=ctx.knobs.ecs_stable_timeout)
    ctx.save_stage_metadata(
        phase=APPLIED,
        cluster=cluster,
        service=name,
        task_set_arn=task_set_arn,
        stable_deadline=deadline.isoformat(),
    )
    ctx.logger.info("Waiting for the task set to become steady...")
    return _wait_and_clean(ctx)


def _run_standalone(ctx: StageContext, provider, spec, task_definition_arn: str, tags: dict) -> Done:
    run_input = {
        "cluster": spec.input.cluster_arn or "default",
        "taskDefinition": task_definition_arn,
        "count": 1,
        "tags": tag_list(tags),
    }
    if spec.input.launch_type:
        run_input["launchType"] = spec.input.launch_type
    if spec.input.awsvpc_configuration is not None:
        run_input["networkConfiguration"] = {"awsvpcConfiguration": spec.input.awsvpc_configuration.as_aws()}
    answer = provider.run_task(run_input, client_token(ctx, "run-task"))
    failures = answer.get("failures") or []
    if failures:
        text = "; ".join(
            f"{f.get('arn', '')} {f.get('reason', '')} {f.get('detail', '')}".strip() for f in failures
        )
        ctx.logger.error(f"RunTask reported failures: {text}")
        return Done(FAILURE, f"RunTask reported failures: {text}")
    tasks = answer.get("tasks") or []
    ctx.logger.success(f"Started {len(tasks)} standalone task(s) of {_short_arn(task_definition_arn)}.")
    return Done(SUCCESS, f"Started {len(tasks)} standalone task(s)")


def _wait_and_clean(ctx: StageContext) -> Done | Continue:
    provider = ctx.platform_provider()
    meta = ctx.metadata
    cluster, name, arn = meta["cluster"], meta["service"], meta["task_set_arn"]
    task_set = provider.task_set(cluster, name, arn)
    if task_set is None or task_set.get("status") not in ("PRIMARY", "ACTIVE"):
        message = f"Task set {_short_arn(arn)} disappeared from service {name} while waiting for it."
        ctx.logger.error(message)
        return Done(FAILURE, message)
    service = provider.describe_service(cluster, name) or {}
    stability = task_set.get("stabilityStatus", "")
    pending = int(service.get("pendingCount") or 0)
    if stability != "STEADY_STATE" or pending > 0:
        deadline = parse_time(meta.get("stable_deadline"))
        if deadline is not None and ctx.now() > deadline:
            message = (
                f"Task set {_short_arn(arn)} did not become steady within {format_seconds(ctx.knobs.ecs_stable_timeout)} "
                f"(stabilityStatus {stability or 'unknown'}, {pending} pending task(s))."
            )
            ctx.logger.error(message)
            return Done(FAILURE, message)
        return Continue(ctx.knobs.ecs_poll, f"stabilityStatus {stability}, {pending} pending task(s)")
    ctx.logger.info(f"Task set {_short_arn(arn)} is steady.")
    piped_id = ctx.runtime.config.piped_id
    for other in provider.task_sets(cluster, name):
        if other["taskSetArn"] == arn:
            continue
        other_tags = tag_dict(other.get("tags"))
        if other_tags.get(LABEL_MANAGED_BY) == MANAGED_BY_PIPED and other_tags.get(LABEL_PIPED) == piped_id:
            provider.delete_task_set(cluster, name, other["taskSetArn"])
            ctx.logger.info(f"Deleted the previous task set {_short_arn(other['taskSetArn'])}.")
        else:
            ctx.logger.info(
                f"Left task set {_short_arn(other['taskSetArn'])} alone: this piped does not manage it."
            )
    task_definition = _short_arn(meta.get("task_definition_arn", ""))
    ctx.logger.success(f"Service {name} runs {task_definition} in one primary task set.")
    return Done(SUCCESS, f"{task_definition} is the primary task set of {name}")


@register
class ECSSync(StageExecutor):
    name = "ECS_SYNC"
    kinds = frozenset({"ECS"})

    def execute(self, ctx: StageContext) -> Done | Continue:
        options = ctx.options if ctx.options is not None else getattr(ctx.target.spec, "quick_sync", None)
        if getattr(options, "recreate", False) and ctx.metadata.get("phase") != APPLIED:
            ctx.logger.info(
                "Warning: `recreate` is not supported yet; the service is synced without stopping its tasks first."
            )
        if ctx.metadata.get("phase") != APPLIED:
            ctx.logger.info(f"Syncing to commit {ctx.commit['hash'][:7]}.")
        return sync(ctx, ctx.target, ctx.commit["hash"])


@register
class ECSRollback(StageExecutor):
    name = "ROLLBACK"
    kinds = frozenset({"ECS"})

    def execute(self, ctx: StageContext) -> Done | Continue:
        running = ctx.running
        if running is None:
            message = (
                "Unable to roll back: there is no earlier successful deployment (it seems this was the first one). "
                "The resources were left as they are."
            )
            ctx.logger.error(message)
            return Done(FAILURE, message)
        if running.ecs_definitions().service is None:
            return Done(SKIPPED, "A standalone task has nothing to roll back")
        if ctx.metadata.get("phase") != APPLIED:
            ctx.logger.info(f"Rolling back to commit {running.commit[:7]} (the last successful deployment).")
        return sync(ctx, running, running.commit)
