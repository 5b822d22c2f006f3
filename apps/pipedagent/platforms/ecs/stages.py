"""The ECS stage executors: ECS_SYNC, ECS_CANARY_ROLLOUT, ECS_TRAFFIC_ROUTING, ECS_PRIMARY_ROLLOUT,
ECS_CANARY_CLEAN and ROLLBACK, on the EXTERNAL deployment controller (every rollout is a task set).

Each stage runs in short steps that survive a restart: what is done is kept in the stage metadata, what the
stages of one deployment share in the deployment metadata (`ecs_task_definition_arn`, `ecs_canary`,
`ecs_primary`, `ecs_traffic`), and AWS resources are found again by their tags before anything is created.
What a re-run finds again anyway is noted (`ctx.note_*`: sent before the next change in AWS or with the
step's outcome); what must be known before a change is saved first (`ctx.save_*`: the listeners before the
weights change, the old primary before the promotion, the count before a recreate scales to 0).
docs/ecs.md describes each stage; the safety rules, in short:
- a deployment registers at most one task definition revision (its commit's, found again by tags);
- a task set is deleted only when no traffic would be lost: its target group gets no traffic, or another
  kept task set serves that target group (checked on the listener rules just before deleting);
- ECS_PRIMARY_ROLLOUT deletes the old primary only, after the new primary is steady;
- ROLLBACK first puts the weights back to primary 100 / canary 0, then redeploys the last successful
  commit as a 100 % primary task set, then deletes every other task set this piped manages.
"""

from __future__ import annotations

from ...deploysource import SourceError
from ...executors import FAILURE, SKIPPED, SUCCESS, Continue, Done, StageContext, StageExecutor, register
from ...gitrepo import GitError
from .provider import (
    LABEL_APPLICATION,
    LABEL_COMMIT_HASH,
    VARIANT_CANARY,
    VARIANT_PRIMARY,
    short_name,
    tag_dict,
    variant_of,
)
from .resources import (
    META_CANARY,
    META_PRIMARY,
    META_TRAFFIC,
    ServiceTarget,
    apply_service,
    client_token,
    create_task_set,
    find_task_set,
    is_ours,
    log_warnings,
    service_target,
    stable_deadline,
    task_definition,
    wait_until_steady,
)
from .traffic import LoadBalancing, route, unsafe_to_delete

__all__ = ["client_token"]

APPLIED = "applied"
RECREATED = "recreated"
CREATED = "created"
PROMOTED = "promoted"
WEIGHTS_RESTORED = "weights_restored"


def _deployment_meta(ctx: StageContext) -> dict:
    return ctx.deployment.get("metadata") or {}


# --- Quick sync (and the rollback's redeploy) ------------------------------------------------------------


def sync(ctx: StageContext, source, commit: str, *, for_deployment: bool = True, recreate: bool = False):
    """Bring the service (or standalone task) to the definitions of `source`, one step at a time."""
    if ctx.metadata.get("phase") == APPLIED:
        return _wait_and_clean(ctx)
    provider = ctx.platform_provider()
    target = service_target(source, commit)
    if ctx.metadata.get("phase") is None:
        log_warnings(ctx, target)
    task_definition_arn = task_definition(ctx, provider, target, for_deployment=for_deployment)
    if target.standalone:
        return _run_standalone(ctx, provider, source.spec, task_definition_arn, target)

    restore = None
    if recreate:
        restore = _scale_down_for_recreate(ctx, provider, target)
    failed = apply_service(ctx, provider, target, restore_count=restore)
    if failed is not None:
        return failed

    task_set_arn = ctx.metadata.get("task_set_arn")
    if not task_set_arn:
        found = find_task_set(ctx, provider, target, task_definition_arn, VARIANT_PRIMARY, full_scale=True)
        if found is not None:
            task_set_arn = found["taskSetArn"]
            ctx.logger.info(f"Found task set {short_name(task_set_arn)} of this commit; using it.")
    if not task_set_arn:
        created = create_task_set(
            ctx,
            provider,
            target,
            task_definition_arn,
            variant=VARIANT_PRIMARY,
            scale=100,
            target_group=target.primary,
            token="task-set",
        )
        task_set_arn = created["taskSetArn"]
        ctx.note_stage_metadata(task_set_arn=task_set_arn)
    provider.make_primary(target.cluster, target.name, task_set_arn)
    ctx.logger.info(f"Task set {short_name(task_set_arn)} is now the primary task set of {target.name}.")
    ctx.note_stage_metadata(
        phase=APPLIED,
        cluster=target.cluster,
        service=target.name,
        task_set_arn=task_set_arn,
        task_definition_arn=task_definition_arn,
        stable_deadline=stable_deadline(ctx),
    )
    ctx.logger.info("Waiting for the task set to become steady...")
    return _wait_and_clean(ctx, target)


def _scale_down_for_recreate(ctx: StageContext, provider, target: ServiceTarget) -> int | None:
    """quickSync.recreate: the service scaled to 0 and its tasks stopped before the new task set starts.
    Answers the count to scale back to when the service definition leaves desiredCount to autoscaling."""
    if ctx.metadata.get("phase") == RECREATED:
        return ctx.metadata.get("recreate_count")
    existing = provider.describe_service(target.cluster, target.name)
    if existing is None:
        ctx.logger.info(f"recreate: service {target.name} does not exist yet; nothing to stop.")
        ctx.save_stage_metadata(phase=RECREATED, recreate_count=None)
        return None
    count = int(existing.get("desiredCount") or 0)
    provider.update_service(target.cluster, target.name, {"desiredCount": 0})
    ctx.logger.info(f"recreate: scaled service {target.name} down to 0 (it ran {count}).")
    task_set_ids = {t.get("id") for t in provider.task_sets(target.cluster, target.name, draining=True)}
    stopped = 0
    for task in provider.tasks(target.cluster, service=target.name):
        # ListTasks filters by service; the group / startedBy check keeps other services' tasks safe even so.
        if task.get("lastStatus") == "STOPPED" or task.get("desiredStatus") == "STOPPED":
            continue
        if task.get("group") != f"service:{target.name}" and task.get("startedBy") not in task_set_ids:
            continue
        provider.stop_task(target.cluster, task["taskArn"], f"PipePortal recreate of {target.name}")
        stopped += 1
    ctx.logger.info(f"recreate: stopped {stopped} running task(s) of {target.name}.")
    ctx.save_stage_metadata(phase=RECREATED, recreate_count=count or None)
    return count or None


def _run_standalone(
    ctx: StageContext, provider, spec, task_definition_arn: str, target: ServiceTarget
) -> Done:
    from .provider import managed_tags, tag_list

    tags = managed_tags(ctx.runtime.config.piped_id, ctx.deployment["application_id"], target.commit)
    run_input = {
        "cluster": target.cluster,
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
    ctx.logger.success(f"Started {len(tasks)} standalone task(s) of {short_name(task_definition_arn)}.")
    return Done(SUCCESS, f"Started {len(tasks)} standalone task(s)")


def _wait_and_clean(ctx: StageContext, target: ServiceTarget | None = None) -> Done | Continue:
    provider = ctx.platform_provider()
    meta = ctx.metadata
    cluster, name, arn = meta["cluster"], meta["service"], meta["task_set_arn"]
    waiting = wait_until_steady(ctx, provider, cluster, name, arn)
    if waiting is not None:
        return waiting
    ctx.logger.info(f"Task set {short_name(arn)} is steady.")
    lb = LoadBalancing(provider)
    if target is None:
        source = ctx.running if ctx.is_rollback else ctx.target
        target = service_target(source, source.commit) if source is not None else None
    if target is not None and target.access_type == "ELB" and target.primary and target.canary:
        # The quick sync sends every request to the primary before the other task sets go.
        _route_all_to_primary(ctx, lb, target.primary.target_group_arn, target.canary.target_group_arn, [])
    piped_id = ctx.runtime.config.piped_id
    live = provider.task_sets(cluster, name)
    for other in live:
        if other["taskSetArn"] == arn:
            continue
        if not is_ours(other, piped_id):
            ctx.logger.info(
                f"Left task set {short_name(other['taskSetArn'])} alone: this piped does not manage it."
            )
            continue
        keep = [t for t in live if t["taskSetArn"] != other["taskSetArn"]]
        reason = unsafe_to_delete(lb, other, keep)
        if reason:
            ctx.logger.info(f"Warning: left task set {short_name(other['taskSetArn'])} in place: {reason}.")
            continue
        provider.delete_task_set(cluster, name, other["taskSetArn"])
        live = keep
        ctx.logger.info(f"Deleted the previous task set {short_name(other['taskSetArn'])}.")
    task_definition_name = short_name(meta.get("task_definition_arn", ""))
    ctx.logger.success(f"Service {name} runs {task_definition_name} in one primary task set.")
    return Done(SUCCESS, f"{task_definition_name} is the primary task set of {name}")


def _route_all_to_primary(
    ctx: StageContext, lb: LoadBalancing, primary: str, canary: str, listeners: list[str]
) -> int:
    """Weights primary 100 / canary 0 on every rule forwarding to both (of `listeners` and of the primary
    target group's load balancers). Answers how many rules forward to both."""
    rules = {r.arn: r for r in lb.rules_of_listeners(listeners)}
    rules.update({r.arn: r for r in lb.rules_for([primary])})
    both = [r for r in rules.values() if r.forwards_to(primary, canary)]
    route(lb, both, primary, canary, (100, 0), ctx.logger.info)
    return len(both)


def _leftovers(ctx: StageContext, live: list[dict], variant: str, keep: set[str]) -> list[dict]:
    """This application's task sets of `variant` that this piped made for earlier deployments and that are not
    part of this one (`keep`) nor the service's primary: what a cancel without rollback left behind."""
    piped_id, app_id = ctx.runtime.config.piped_id, ctx.deployment["application_id"]
    return [
        t
        for t in live
        if t["taskSetArn"] not in keep
        and t.get("status") != "PRIMARY"
        and is_ours(t, piped_id)
        and tag_dict(t.get("tags")).get(LABEL_APPLICATION) == app_id
        and variant_of(t) == variant
    ]


def _delete_leftovers(
    ctx: StageContext, provider, lb: LoadBalancing, cluster: str, service: str, live: list[dict], stale
) -> list[dict]:
    """Delete the leftover task sets `stale` that get no traffic nobody else serves; answers what is live."""
    for task_set in stale:
        name = short_name(task_set["taskSetArn"])
        variant = variant_of(task_set)
        commit = tag_dict(task_set.get("tags")).get(LABEL_COMMIT_HASH, "")[:7] or "unknown"
        keep = [t for t in live if t["taskSetArn"] != task_set["taskSetArn"]]
        reason = unsafe_to_delete(lb, task_set, keep)
        if reason:
            ctx.logger.info(f"Warning: left the leftover {variant} task set {name} in place: {reason}.")
            continue
        provider.delete_task_set(cluster, service, task_set["taskSetArn"])
        live = keep
        ctx.logger.info(
            f"Deleted the leftover {variant} task set {name} (commit {commit}) of an earlier deployment."
        )
    return live


@register
class ECSSync(StageExecutor):
    name = "ECS_SYNC"
    kinds = frozenset({"ECS"})

    def execute(self, ctx: StageContext) -> Done | Continue:
        options = ctx.options if ctx.options is not None else getattr(ctx.target.spec, "quick_sync", None)
        if ctx.metadata.get("phase") is None:
            ctx.logger.info(f"Syncing to commit {ctx.commit['hash'][:7]}.")
        return sync(ctx, ctx.target, ctx.commit["hash"], recreate=bool(getattr(options, "recreate", False)))


# --- Canary ---------------------------------------------------------------------------------------------


def _needs_service(ctx: StageContext, target: ServiceTarget, stage: str) -> Done | None:
    if target.standalone:
        message = (
            f"{stage} needs a service: the application has no service definition (serviceDefinitionFile)."
        )
        ctx.logger.error(message)
        return Done(FAILURE, message)
    return None


@register
class ECSCanaryRollout(StageExecutor):
    """A non-primary task set of the new version at `scale` % of the service's desired count, on the canary
    target group (ELB) or in the service's registries (SERVICE_DISCOVERY); steady before the stage ends."""

    name = "ECS_CANARY_ROLLOUT"
    kinds = frozenset({"ECS"})

    def execute(self, ctx: StageContext) -> Done | Continue:
        provider = ctx.platform_provider()
        if ctx.metadata.get("phase") == APPLIED:
            return self._wait(ctx, provider)
        target = service_target(ctx.target, ctx.commit["hash"])
        failed = _needs_service(ctx, target, self.name)
        if failed:
            return failed
        if target.access_type == "ELB" and target.canary is None:
            message = (
                "ECS_CANARY_ROLLOUT needs a canary target group with accessType ELB: set "
                "spec.input.targetGroups.canary in the app config."
            )
            ctx.logger.error(message)
            return Done(FAILURE, message)
        scale = float(getattr(ctx.options, "scale", 0) or 0)
        log_warnings(ctx, target)
        task_definition_arn = task_definition(ctx, provider, target, for_deployment=True)
        failed = apply_service(ctx, provider, target)
        if failed:
            return failed
        canary = None
        known = (_deployment_meta(ctx).get(META_CANARY) or {}).get("task_set_arn")
        if known:
            canary = provider.task_set(target.cluster, target.name, known)
            if canary is not None and canary.get("status") not in ("ACTIVE", "PRIMARY"):
                canary = None
        canary = canary or find_task_set(ctx, provider, target, task_definition_arn, VARIANT_CANARY)
        if canary is not None:
            ctx.logger.info(
                f"Found canary task set {short_name(canary['taskSetArn'])} of this commit; using it."
            )
            if float((canary.get("scale") or {}).get("value", 0)) != scale:
                provider.set_task_set_scale(target.cluster, target.name, canary["taskSetArn"], scale)
                ctx.logger.info(f"Scaled it to {scale:g} %.")
        else:
            canary = create_task_set(
                ctx,
                provider,
                target,
                task_definition_arn,
                variant=VARIANT_CANARY,
                scale=scale,
                target_group=target.canary,
                token="canary-task-set",
            )
        arn = canary["taskSetArn"]
        ctx.note_deployment_metadata(
            **{
                META_CANARY: {
                    "task_set_arn": arn,
                    "scale": scale,
                    "task_definition": short_name(task_definition_arn),
                    "target_group": target.canary.target_group_arn if target.canary else "",
                    "cluster": target.cluster,
                    "service": target.name,
                }
            }
        )
        ctx.note_stage_metadata(
            phase=APPLIED,
            cluster=target.cluster,
            service=target.name,
            task_set_arn=arn,
            stable_deadline=stable_deadline(ctx),
        )
        ctx.logger.info("Waiting for the canary task set to become steady...")
        return self._wait(ctx, provider, target)

    def _wait(self, ctx: StageContext, provider, target: ServiceTarget | None = None) -> Done | Continue:
        meta = ctx.metadata
        waiting = wait_until_steady(ctx, provider, meta["cluster"], meta["service"], meta["task_set_arn"])
        if waiting is not None:
            return waiting
        # Canaries of earlier deployments (a cancel without rollback keeps its canary) go once this one is
        # steady: it serves the canary target group now, and only one version is the canary.
        live = provider.task_sets(meta["cluster"], meta["service"])
        stale = _leftovers(ctx, live, VARIANT_CANARY, {meta["task_set_arn"]})
        if stale:
            lb = LoadBalancing(provider)
            _delete_leftovers(ctx, provider, lb, meta["cluster"], meta["service"], live, stale)
        canary = _deployment_meta(ctx).get(META_CANARY) or {}
        where = f" on target group {short_name(canary['target_group'])}" if canary.get("target_group") else ""
        text = (
            f"Canary task set {short_name(meta['task_set_arn'])} ({canary.get('task_definition', '')}) "
            f"runs at {float(canary.get('scale', 0)):g} %{where}."
        )
        ctx.logger.success(text)
        return Done(SUCCESS, text)


@register
class ECSTrafficRouting(StageExecutor):
    """Weights (primary, canary) on every listener rule that forwards to both target groups."""

    name = "ECS_TRAFFIC_ROUTING"
    kinds = frozenset({"ECS"})

    def execute(self, ctx: StageContext) -> Done:
        target = service_target(ctx.target, ctx.commit["hash"])
        failed = _needs_service(ctx, target, self.name)
        if failed:
            return failed
        if target.access_type != "ELB":
            message = (
                f"ECS_TRAFFIC_ROUTING works with accessType ELB; this application uses {target.access_type}, "
                "where the canary task set is reached through the service registry. Remove the stage."
            )
            ctx.logger.error(message)
            return Done(FAILURE, message)
        if target.primary is None or target.canary is None:
            message = (
                "ECS_TRAFFIC_ROUTING needs both target groups: set spec.input.targetGroups.primary and "
                ".canary in the app config."
            )
            ctx.logger.error(message)
            return Done(FAILURE, message)
        options = ctx.options
        weights = options.weights() if options is not None else (100, 0)
        primary, canary = target.primary.target_group_arn, target.canary.target_group_arn
        lb = LoadBalancing(ctx.platform_provider())
        if lb.target_group(primary) is None:
            message = f"The primary target group {primary} does not exist."
            ctx.logger.error(message)
            return Done(FAILURE, message)
        balancers = lb.load_balancers([primary])
        if not balancers:
            message = (
                f"The primary target group {lb.name(primary)} belongs to no load balancer: no listener rule "
                "forwards to it, so there is no traffic to route."
            )
            ctx.logger.error(message)
            return Done(FAILURE, message)
        rules = lb.rules_for([primary])
        both = [r for r in rules if r.forwards_to(primary, canary)]
        for rule in rules:
            if rule.forwards_to(primary) and not rule.forwards_to(primary, canary):
                ctx.logger.info(
                    f"Warning: {rule.label} forwards to the primary target group {lb.name(primary)} only, so "
                    f"its traffic stays on the primary; add {lb.name(canary)} to that forward action (weight 0) "
                    "to have this stage route it too."
                )
        if not both:
            only_primary = [r.label for r in rules if r.forwards_to(primary)]
            hint = (
                f"change {'; '.join(only_primary)} to forward to both target groups"
                if only_primary
                else f"add a listener rule forwarding to {lb.name(primary)} and {lb.name(canary)}"
            )
            message = (
                f"No listener rule of load balancer {', '.join(short_name(b) for b in balancers)} forwards to "
                f"both {lb.name(primary)} and {lb.name(canary)}, so the traffic cannot be split: {hint} "
                "(weights primary 100, canary 0)."
            )
            ctx.logger.error(message)
            return Done(FAILURE, message)
        # A share of the traffic for a target group no task set of the service serves would all fail.
        served = {
            entry.get("targetGroupArn")
            for t in lb.provider.task_sets(target.cluster, target.name)
            if float((t.get("scale") or {}).get("value", 0)) > 0
            for entry in t.get("loadBalancers") or []
        }
        for group, weight, stage in (
            (primary, weights[0], "ECS_PRIMARY_ROLLOUT"),
            (canary, weights[1], "ECS_CANARY_ROLLOUT"),
        ):
            if weight > 0 and group not in served:
                message = (
                    f"No task set of service {target.name} is registered in target group {lb.name(group)}, so the "
                    f"{weight} % of the traffic routed to it would fail: run {stage} before this stage."
                )
                ctx.logger.error(message)
                return Done(FAILURE, message)
        remembered = _deployment_meta(ctx).get(META_TRAFFIC) or {}
        listeners = list(dict.fromkeys([*remembered.get("listeners", []), *(r.listener_arn for r in both)]))
        # Remembered before any change, so that a rollback after a crash mid-way still finds every listener.
        ctx.save_deployment_metadata(
            **{
                META_TRAFFIC: {
                    **remembered,
                    "listeners": listeners,
                    "primary_target_group": primary,
                    "canary_target_group": canary,
                    "primary_name": lb.name(primary),
                    "canary_name": lb.name(canary),
                }
            }
        )
        ctx.logger.info(f"Routing traffic: primary {weights[0]} %, canary {weights[1]} %.")
        route(lb, both, primary, canary, weights, ctx.logger.info)
        ctx.note_deployment_metadata(
            **{
                META_TRAFFIC: {
                    **_deployment_meta(ctx)[META_TRAFFIC],
                    "weights": {"primary": weights[0], "canary": weights[1]},
                }
            }
        )
        text = f"Primary {weights[0]} %, canary {weights[1]} % on {len(both)} listener rule(s)"
        ctx.logger.success(f"{text}.")
        return Done(SUCCESS, text)


@register
class ECSPrimaryRollout(StageExecutor):
    """A 100 % task set of the new version on the primary target group, made primary once steady; then the
    old primary goes (never a task set that still gets traffic nobody else serves)."""

    name = "ECS_PRIMARY_ROLLOUT"
    kinds = frozenset({"ECS"})

    def execute(self, ctx: StageContext) -> Done | Continue:
        provider = ctx.platform_provider()
        phase = ctx.metadata.get("phase")
        target = service_target(ctx.target, ctx.commit["hash"])
        if phase is None:
            failed = _needs_service(ctx, target, self.name) or self._create(ctx, provider, target)
            if failed is not None:
                return failed
            phase = CREATED
        meta = ctx.metadata
        if phase == CREATED:
            waiting = wait_until_steady(ctx, provider, target.cluster, target.name, meta["task_set_arn"])
            if waiting is not None:
                return waiting
            ctx.logger.info(f"Task set {short_name(meta['task_set_arn'])} is steady.")
            current = [
                t for t in provider.task_sets(target.cluster, target.name) if t.get("status") == "PRIMARY"
            ]
            if any(t["taskSetArn"] == meta["task_set_arn"] for t in current):
                # Already promoted by an earlier run of this stage that did not get to record the old primary.
                ctx.note_stage_metadata(phase=PROMOTED)
            else:
                # Recorded before the promotion, so that a restart still knows which task set to delete.
                ctx.save_stage_metadata(old_primary_arns=[t["taskSetArn"] for t in current])
                provider.make_primary(target.cluster, target.name, meta["task_set_arn"])
                ctx.logger.info(
                    f"Task set {short_name(meta['task_set_arn'])} is now the primary task set of {target.name}."
                )
                ctx.note_stage_metadata(phase=PROMOTED)
        return self._delete_old_primary(ctx, provider, target)

    def _create(self, ctx: StageContext, provider, target: ServiceTarget) -> Done | None:
        log_warnings(ctx, target)
        task_definition_arn = task_definition(ctx, provider, target, for_deployment=True)
        failed = apply_service(ctx, provider, target)
        if failed is not None:
            return failed
        canary_arn = (_deployment_meta(ctx).get(META_CANARY) or {}).get("task_set_arn", "")
        known = (_deployment_meta(ctx).get(META_PRIMARY) or {}).get("task_set_arn")
        primary = provider.task_set(target.cluster, target.name, known) if known else None
        if primary is not None and primary.get("status") not in ("ACTIVE", "PRIMARY"):
            primary = None
        primary = primary or find_task_set(
            ctx,
            provider,
            target,
            task_definition_arn,
            VARIANT_PRIMARY,
            exclude=(canary_arn,),
            full_scale=True,
        )
        if primary is not None:
            ctx.logger.info(f"Found task set {short_name(primary['taskSetArn'])} of this commit; using it.")
        else:
            primary = create_task_set(
                ctx,
                provider,
                target,
                task_definition_arn,
                variant=VARIANT_PRIMARY,
                scale=100,
                target_group=target.primary,
                token="primary-task-set",
            )
        arn = primary["taskSetArn"]
        ctx.note_deployment_metadata(
            **{META_PRIMARY: {"task_set_arn": arn, "task_definition": short_name(task_definition_arn)}}
        )
        ctx.note_stage_metadata(
            phase=CREATED,
            task_set_arn=arn,
            task_definition_arn=task_definition_arn,
            cluster=target.cluster,
            service=target.name,
            stable_deadline=stable_deadline(ctx),
        )
        ctx.logger.info("Waiting for the new primary task set to become steady...")
        return None

    def _delete_old_primary(self, ctx: StageContext, provider, target: ServiceTarget) -> Done:
        meta = ctx.metadata
        piped_id = ctx.runtime.config.piped_id
        canary_arn = (_deployment_meta(ctx).get(META_CANARY) or {}).get("task_set_arn", "")
        live = provider.task_sets(target.cluster, target.name)
        old = meta.get("old_primary_arns")
        if old is None:
            # Resumed without knowing which was the old primary: the earlier primaries this piped made.
            old = [
                t["taskSetArn"]
                for t in live
                if t["taskSetArn"] not in (meta["task_set_arn"], canary_arn)
                and is_ours(t, piped_id)
                and variant_of(t) != VARIANT_CANARY
            ]
        lb = LoadBalancing(provider)
        for task_set in [t for t in live if t["taskSetArn"] in old]:
            name = short_name(task_set["taskSetArn"])
            if not is_ours(task_set, piped_id):
                ctx.logger.info(f"Left the old primary task set {name} alone: this piped does not manage it.")
                continue
            keep = [t for t in live if t["taskSetArn"] != task_set["taskSetArn"]]
            reason = unsafe_to_delete(lb, task_set, keep)
            if reason:
                ctx.logger.info(f"Warning: left the old primary task set {name} in place: {reason}.")
                continue
            provider.delete_task_set(target.cluster, target.name, task_set["taskSetArn"])
            live = keep
            ctx.logger.info(f"Deleted the old primary task set {name}.")
        # Full task sets of earlier deployments besides the old primary (a primary rollout cancelled before
        # its promotion leaves one serving the primary target group): the new primary serves it now.
        stale = _leftovers(ctx, live, VARIANT_PRIMARY, {meta["task_set_arn"], canary_arn, *old})
        live = _delete_leftovers(ctx, provider, lb, target.cluster, target.name, live, stale)
        task_definition_name = short_name(meta.get("task_definition_arn", ""))
        text = f"{task_definition_name} is the primary task set of {target.name} at 100 %"
        ctx.logger.success(f"{text}.")
        return Done(SUCCESS, text)


@register
class ECSCanaryClean(StageExecutor):
    """Delete the canary task set (already gone counts as done), never while its target group gets traffic."""

    name = "ECS_CANARY_CLEAN"
    kinds = frozenset({"ECS"})

    def execute(self, ctx: StageContext) -> Done:
        provider = ctx.platform_provider()
        target = service_target(ctx.target, ctx.commit["hash"])
        failed = _needs_service(ctx, target, self.name)
        if failed:
            return failed
        piped_id = ctx.runtime.config.piped_id
        app_id = ctx.deployment["application_id"]
        known = (_deployment_meta(ctx).get(META_CANARY) or {}).get("task_set_arn", "")
        live = (
            provider.task_sets(target.cluster, target.name)
            if provider.describe_service(target.cluster, target.name)
            else []
        )
        canaries = [
            t
            for t in live
            if t["taskSetArn"] == known
            or (
                is_ours(t, piped_id)
                and variant_of(t) == VARIANT_CANARY
                and tag_dict(t.get("tags")).get(LABEL_APPLICATION) == app_id
                and tag_dict(t.get("tags")).get(LABEL_COMMIT_HASH) == target.commit
            )
        ]
        lb = LoadBalancing(provider)
        # Canaries earlier deployments left (a cancel without rollback) go too, when no traffic needs them.
        stale = _leftovers(ctx, live, VARIANT_CANARY, {t["taskSetArn"] for t in canaries})
        live = _delete_leftovers(ctx, provider, lb, target.cluster, target.name, live, stale)
        if not canaries:
            text = "The canary task set is already gone; nothing to clean"
            ctx.logger.success(f"{text}.")
            return Done(SUCCESS, text)
        for canary in canaries:
            if canary.get("status") == "PRIMARY":
                message = (
                    f"Task set {short_name(canary['taskSetArn'])} is the service's primary task set; "
                    "it is not deleted as a canary."
                )
                ctx.logger.error(message)
                return Done(FAILURE, message)
            keep = [t for t in live if t["taskSetArn"] != canary["taskSetArn"]]
            reason = unsafe_to_delete(lb, canary, keep)
            if reason:
                message = (
                    f"The canary task set {short_name(canary['taskSetArn'])} was not deleted: {reason}. Route "
                    "the traffic to the primary first (ECS_TRAFFIC_ROUTING with primary: 100)."
                )
                ctx.logger.error(message)
                return Done(FAILURE, message)
            provider.delete_task_set(target.cluster, target.name, canary["taskSetArn"])
            live = keep
            ctx.logger.info(f"Deleted the canary task set {short_name(canary['taskSetArn'])}.")
        text = f"Deleted {len(canaries)} canary task set(s)"
        ctx.logger.success(f"{text}.")
        return Done(SUCCESS, text)


# --- Rollback -------------------------------------------------------------------------------------------


@register
class ECSRollback(StageExecutor):
    """First the weights back to primary 100 / canary 0, then the last successful commit's definitions as a
    100 % primary task set, then every other task set this piped manages deleted."""

    name = "ROLLBACK"
    kinds = frozenset({"ECS"})

    def execute(self, ctx: StageContext) -> Done | Continue:
        phase = ctx.metadata.get("phase")
        if phase is None:
            self._restore_weights(ctx)
            ctx.note_stage_metadata(phase=WEIGHTS_RESTORED)
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
        if ctx.metadata.get("phase") == WEIGHTS_RESTORED:
            ctx.logger.info(f"Rolling back to commit {running.commit[:7]} (the last successful deployment).")
            ctx.note_stage_metadata(phase="redeploying")
        return sync(ctx, running, running.commit, for_deployment=False)

    def _restore_weights(self, ctx: StageContext) -> None:
        """Primary 100 / canary 0 on the listeners the traffic routing stages remembered, and on the rules of
        the target groups the target and running configs name (weights a crash or an older cancel left)."""
        remembered = _deployment_meta(ctx).get(META_TRAFFIC) or {}
        pairs = []
        if remembered.get("primary_target_group") and remembered.get("canary_target_group"):
            pairs.append(
                (
                    remembered["primary_target_group"],
                    remembered["canary_target_group"],
                    remembered.get("listeners", []),
                )
            )
        for source in (ctx.target, ctx.running):
            if source is None:
                continue
            try:
                groups = source.spec.input.target_groups
                access = source.spec.input.access_type
            except (SourceError, GitError):  # an unreadable config: the remembered listeners still count
                continue
            if access == "ELB" and groups.primary and groups.canary:
                pair = (groups.primary.target_group_arn, groups.canary.target_group_arn, [])
                if pair[:2] not in [p[:2] for p in pairs]:
                    pairs.append(pair)
        if not pairs:
            return
        lb = LoadBalancing(ctx.platform_provider())
        routed = 0
        for primary, canary, listeners in pairs:
            if lb.target_group(primary) is None:
                ctx.logger.info(
                    f"Warning: target group {primary} no longer exists; its weights were not restored."
                )
                continue
            routed += _route_all_to_primary(ctx, lb, primary, canary, listeners)
        if routed:
            ctx.logger.info(f"Traffic is back on the primary target group on {routed} listener rule(s).")
            if remembered:
                ctx.note_deployment_metadata(
                    **{
                        META_TRAFFIC: {
                            **remembered,
                            "weights": {"primary": 100, "canary": 0},
                            "restored": True,
                        }
                    }
                )
