"""Deployments: the list, the deployment page with its live pipeline, and approve / skip / cancel."""

from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from apps.core.errors import DomainError, InvalidInput
from apps.deployments import services
from apps.deployments.choices import (
    DEPLOYMENT_TERMINAL,
    STAGE_TERMINAL,
    WAIT_APPROVAL,
    CommandStatus,
    CommandType,
    StageStatus,
)
from apps.deployments.models import Command, Deployment, Stage
from apps.ops.housekeeping import DETAILS_PRUNED_KEY
from apps.projects.principal import Principal
from apps.projects.roles import Action, Resource

from .. import livestate, queries
from ..forms import CancelForm, DeploymentFilterForm
from ..pipeds import parse_time
from ..templatetags.stagelogs import log_cursor
from .common import form_status, portal_view, render_page

# How often a running deployment's page asks for fresh fragments.
POLL_SECONDS = 2
# How long after a stage ended its log tail still looks for late lines.
LOG_GRACE_SECONDS = 5


@portal_view
@require_GET
def deployment_list(request: HttpRequest, principal: Principal) -> HttpResponse:
    principal.authorize(Resource.DEPLOYMENT, Action.LIST)
    form = DeploymentFilterForm(request.GET)
    page = None
    if form.is_valid():
        data = form.cleaned_data
        application_ids = None
        if data["application"].strip():
            application_ids = queries.resolve_application_filter(principal.project_id, data["application"])
        page = queries.list_deployments(
            principal.project_id,
            application_ids=application_ids,
            status=data["status"],
            labels=data["labels"],
            cursor=data["cursor"],
        )
    waiting = queries.waiting_for_approval([d.id for d in page.items] if page else [])
    filtered = any(request.GET.get(name) for name in ("application", "status", "labels"))
    context = {
        "form": form,
        "page": page,
        "waiting": waiting,
        "filtered": filtered,
        "first_page": not request.GET.get("cursor"),
    }
    return render_page(request, "webui/deployments/list.html", context, status=form_status(form))


@dataclass
class Approval:
    who: str
    at: object = None
    pending: bool = False  # sent by the portal or API, not yet handled by the piped


@dataclass
class StageView:
    """A stage with what the page needs to draw it and the buttons this person may press."""

    stage: Stage
    can_approve: bool = False
    can_skip: bool = False
    approval: dict | None = None
    approvals: list[Approval] = field(default_factory=list)

    @property
    def approved_names(self) -> str:
        return ", ".join(a.who for a in self.approvals if not a.pending)


def _approvals(stage: Stage, commands: list[Command]) -> list[Approval]:
    """Approvals the piped recorded, with the time of the command that carried each, then those in flight."""
    by_commander = {c.commander: c for c in commands if c.status != CommandStatus.FAILED}
    recorded = stage.approvals
    approvals = [
        Approval(who, by_commander[who].created_at if who in by_commander else None) for who in recorded
    ]
    approvals += [
        Approval(c.commander, c.created_at, pending=True)
        for c in commands
        if c.status == CommandStatus.NOT_HANDLED_YET and c.commander not in recorded
    ]
    return approvals


def _selected_stage(stages: list[Stage], wanted: str) -> Stage | None:
    if not stages:
        return None
    for stage in stages:
        if stage.stage_id == wanted:
            return stage
    # What a person opening the page wants to read: the stage at work, else the one that failed.
    for status in (StageStatus.RUNNING, StageStatus.FAILURE):
        matching = [s for s in stages if s.status == status]
        if matching:
            return matching[-1]
    started = [s for s in stages if s.status != StageStatus.NOT_STARTED_YET]
    return started[-1] if started else stages[0]


def _deployment_context(request: HttpRequest, principal: Principal, deployment: Deployment) -> dict:
    stages = queries.deployment_stages(deployment)
    commands = queries.deployment_commands(deployment)
    approvals = queries.approvals_by_stage(commands)
    may_update = principal.can(Resource.DEPLOYMENT, Action.UPDATE)
    views = []
    for stage in stages:
        view = StageView(stage)
        if stage.name == WAIT_APPROVAL:
            view.approval = services.approval_state(stage)
            view.approvals = _approvals(stage, approvals.get(stage.stage_id, []))
            in_flight = any(a.pending and a.who == principal.identity for a in view.approvals)
            view.can_approve = services.can_approve(principal, stage) and not in_flight
        view.can_skip = (
            may_update and stage.name in services.SKIPPABLE_STAGES and stage.status == StageStatus.RUNNING
        )
        views.append(view)
    # The forward pipeline is drawn left to right; hidden stages (the planner's rollback stages) appear once
    # they start, the rollback ones under it.
    shown = [v for v in views if v.stage.visible or v.stage.status != StageStatus.NOT_STARTED_YET]
    pipeline = [v for v in shown if not v.stage.rollback]
    rollback = [v for v in shown if v.stage.rollback]
    selected = _selected_stage([v.stage for v in pipeline + rollback], request.GET.get("stage", ""))
    completed = deployment.status in DEPLOYMENT_TERMINAL
    pending_cancel = [
        c
        for c in commands
        if c.type == CommandType.CANCEL_DEPLOYMENT and c.status == CommandStatus.NOT_HANDLED_YET
    ]
    waiting = [v for v in views if v.approval is not None and v.stage.status == StageStatus.RUNNING]
    return {
        "deployment": deployment,
        "pipeline": pipeline,
        "rollback_stages": rollback,
        "waiting": waiting,
        "selected": selected,
        "completed": completed,
        "can_cancel": may_update and not completed,
        "pending_cancel": pending_cancel,
        "poll_seconds": POLL_SECONDS,
        "cancel_form": CancelForm(),
        # ECS: traffic split and task counts while a canary runs; the plan preview (apps/webui/livestate.py).
        "canary": livestate.canary_context(deployment),
        "preview": livestate.preview_context(deployment),
    }


def _log_is_live(deployment: Deployment, stage: Stage | None) -> bool:
    """Whether the stage's log may still grow, so its tail keeps polling.

    A few seconds after the stage ends the tail still looks once more: the piped sends the last lines
    before the final status, but a retried batch may come just after it.
    """
    if stage is None:
        return False
    if deployment.status not in DEPLOYMENT_TERMINAL and stage.status not in STAGE_TERMINAL:
        return True
    ended = stage.completed_at or deployment.completed_at
    return ended is not None and timezone.now() - ended < timedelta(seconds=LOG_GRACE_SECONDS)


def _log_context(deployment: Deployment, stage: Stage | None) -> dict:
    """The selected stage's log for a page or the live fragment: its last blocks and where the tail goes on."""
    blocks, truncated = queries.stage_log_blocks(stage) if stage is not None else ([], False)
    return {
        "log_blocks": blocks,
        "log_truncated": truncated,
        "log_cursor": log_cursor(blocks[-1]) if blocks else "start",
        "log_live": _log_is_live(deployment, stage),
    }


def _parse_log_cursor(value: str) -> tuple[int, int] | None:
    """`start`, or `<retried_count>.<index>` of the last block the page has."""
    if value == "start":
        return None
    run, dot, index = value.partition(".")
    if dot and run.isdigit() and index.isdigit() and len(value) <= 24:
        return int(run), int(index)
    raise InvalidInput(
        f"after={value!r}: expected 'start' or <run>.<index> of the last line shown, e.g. 0.41."
    )


def pruned_at(deployment: Deployment):
    """When retention removed the deployment's stages and logs (None while they are kept)."""
    return parse_time((deployment.metadata or {}).get(DETAILS_PRUNED_KEY))


def _deployment_page(
    request: HttpRequest, principal: Principal, deployment: Deployment, *, error: str = "", status: int = 200
) -> HttpResponse:
    context = _deployment_context(request, principal, deployment)
    selected = context["selected"]
    context["log_live"] = _log_is_live(deployment, selected)
    context["details_pruned_at"] = pruned_at(deployment)
    if request.GET.get("fragment") == "live" and request.method == "GET":
        # When the stage the page follows has moved on, the new stage's log comes along out of band.
        if selected is not None and selected.stage_id != request.GET.get("shown"):
            context["log_oob"] = True
            context.update(_log_context(deployment, selected))
        return render_page(request, "webui/deployments/_live.html", context, status=status)
    context.update(_log_context(deployment, selected))
    context["error"] = error
    context["piped_name"] = deployment.piped.name
    return render_page(request, "webui/deployments/detail.html", context, status=status)


@portal_view
@require_GET
def deployment_detail(request: HttpRequest, principal: Principal, deployment_id) -> HttpResponse:
    deployment = services.get_deployment(principal, deployment_id)
    return _deployment_page(request, principal, deployment)


@portal_view
@require_GET
def stage_logs(request: HttpRequest, principal: Principal, deployment_id, stage_id: str) -> HttpResponse:
    deployment = services.get_deployment(principal, deployment_id)
    stage = services.get_stage(deployment, stage_id)
    context = {"deployment": deployment, "selected": stage, "poll_seconds": POLL_SECONDS}
    if "after" in request.GET:
        # The live tail: only the lines after the last one the page has (one query, whatever the log's
        # length), appended out of band, and the poller again with the new position.
        after = _parse_log_cursor(request.GET["after"])
        blocks, more = queries.stage_log_tail(stage, after)
        context.update(
            log_blocks=blocks,
            log_after_run=after[0] if after else None,
            log_cursor=log_cursor(blocks[-1]) if blocks else request.GET["after"],
            log_live=more or _log_is_live(deployment, stage),
        )
        return render_page(request, "webui/deployments/_stage_log_tail.html", context)
    context.update(_log_context(deployment, stage))
    template = "webui/deployments/_stage_logs.html" if request.htmx else "webui/deployments/stage_logs.html"
    return render_page(request, template, context)


def _action_done(request: HttpRequest, deployment: Deployment, text: str) -> HttpResponse:
    messages.success(request, text)
    return redirect("webui:deployment", deployment_id=deployment.id)


@portal_view
@require_POST
def stage_approve(request: HttpRequest, principal: Principal, deployment_id, stage_id: str) -> HttpResponse:
    deployment = services.get_deployment(principal, deployment_id, Action.UPDATE)
    try:
        services.approve_stage(principal, deployment, stage_id)
    except DomainError as exc:
        return _deployment_page(request, principal, deployment, error=exc.message, status=exc.status_code)
    return _action_done(
        request, deployment, f"Approved as {principal.identity}; the piped records it within seconds."
    )


@portal_view
@require_POST
def stage_skip(request: HttpRequest, principal: Principal, deployment_id, stage_id: str) -> HttpResponse:
    deployment = services.get_deployment(principal, deployment_id, Action.UPDATE)
    try:
        services.skip_stage(principal, deployment, stage_id)
    except DomainError as exc:
        return _deployment_page(request, principal, deployment, error=exc.message, status=exc.status_code)
    return _action_done(request, deployment, f"Skip of stage {stage_id} requested.")


@portal_view
@require_POST
def deployment_cancel(request: HttpRequest, principal: Principal, deployment_id) -> HttpResponse:
    deployment = services.get_deployment(principal, deployment_id, Action.UPDATE)
    form = CancelForm(request.POST)
    if not form.is_valid():
        message = "; ".join(form.errors.get("rollback", ["Bad request."]))
        return _deployment_page(request, principal, deployment, error=message, status=400)
    rollback = form.cleaned_data["rollback"]
    try:
        services.cancel_deployment(
            principal, deployment, force_rollback=rollback == "yes", force_no_rollback=rollback == "no"
        )
    except DomainError as exc:
        return _deployment_page(request, principal, deployment, error=exc.message, status=exc.status_code)
    how = {"yes": " with rollback", "no": " without rollback"}.get(rollback, "")
    return _action_done(request, deployment, f"Cancel{how} requested; the piped stops the deployment.")
