"""Retention on seeded data: what goes, what stays, in batches bounded by primary-key ranges."""

import json
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from apps.applications.models import Application
from apps.applications.services import add_application
from apps.deployments.choices import CommandStatus, CommandType, StageStatus
from apps.deployments.models import Command, Deployment, Stage, StageLogBlock
from apps.ops.housekeeping import DETAILS_PRUNED_KEY, prune
from apps.ops.tasks import LOCK_KEY, prune_task
from apps.projects.models import AuditEvent
from apps.projects.principal import system_principal

from .conftest import seed_deployment

RETENTION = {
    "PIPEPORTAL_RETENTION_KEEP_DEPLOYMENTS": 3,
    "PIPEPORTAL_RETENTION_STAGE_LOG_DAYS": 10,
    "PIPEPORTAL_RETENTION_DEPLOYMENT_DETAIL_DAYS": 30,
    "PIPEPORTAL_RETENTION_COMMAND_DAYS": 5,
    "PIPEPORTAL_RETENTION_AUDIT_DAYS": 20,
    "PIPEPORTAL_RETENTION_BATCH_SIZE": 2,
}
STAGES = [
    ("ECS_CANARY_ROLLOUT", StageStatus.SUCCESS, 30.0),
    ("ECS_PRIMARY_ROLLOUT", StageStatus.SUCCESS, 40.0),
]
LOGS = 3  # per stage


def days(n: float) -> timedelta:
    return timedelta(days=n)


@pytest.fixture
def seeded(project, application, piped):
    """Deployments of two applications at known ages, commands and audit rows around the cutoffs."""
    now = timezone.now()

    def seed(app, age, **kw):
        return seed_deployment(app, age=age, stages=STAGES, logs_per_stage=LOGS, now=now, **kw)

    hello = {
        "new1": seed(application, days(1)),
        "new2": seed(application, days(2), status="FAILURE"),
        "new3": seed(application, days(3), status="CANCELLED"),
        "logs12": seed(application, days(12)),
        "logs15": seed(application, days(15), status="FAILURE"),
        "old40": seed(application, days(40)),
        "pointed45": seed(application, days(45)),
        "old50": seed(application, days(50), status="CANCELLED"),
        "running60": seed(application, days(60), status="RUNNING"),
        "fresh8": seed(application, days(8)),
    }
    # Rollback needs the last successful deployment: an application's pointers protect it at any age.
    Application.objects.filter(pk=application.pk).update(most_recent_successful_deployment=hello["pointed45"])

    world = add_application(
        system_principal(project.id),
        project,
        name="world",
        piped_id=piped.id,
        platform_provider="ECS",
        repo_id="manifests",
        path="apps/world",
    )
    # Fewer deployments than the number kept: nothing of theirs goes, however old.
    others = [seed(world, days(100)), seed(world, days(200))]

    def command(age: float, status: str) -> Command:
        made = Command.objects.create(
            project=project, piped=piped, type=CommandType.SYNC_APPLICATION, commander="alice", status=status
        )
        Command.objects.filter(pk=made.pk).update(created_at=now - days(age))
        return made

    commands = {
        "handled_old": command(10, CommandStatus.SUCCEEDED),
        "failed_old": command(9, CommandStatus.FAILED),
        "timeout_old": command(8, CommandStatus.TIMEOUT),
        "handled_new": command(1, CommandStatus.SUCCEEDED),
        "unhandled_old": command(10, CommandStatus.NOT_HANDLED_YET),
    }

    def audit(age: float) -> AuditEvent:
        row = AuditEvent.objects.create(project=project, actor="alice", actor_kind="user", verb="test.seeded")
        AuditEvent.objects.filter(pk=row.pk).update(created_at=now - days(age))
        return row

    audits = {"old": [audit(25), audit(30), audit(21)], "new": [audit(19), audit(1)]}
    return {"now": now, "hello": hello, "world": others, "commands": commands, "audits": audits}


def counts(deployment: Deployment) -> tuple[int, int]:
    stages = Stage.objects.filter(deployment=deployment).count()
    logs = StageLogBlock.objects.filter(stage__deployment=deployment).count()
    return stages, logs


WHOLE = (len(STAGES), len(STAGES) * LOGS)


@override_settings(**RETENTION)
def test_the_retention_rules_hold_and_the_newest_deployments_survive(seeded):
    hello = seeded["hello"]
    summary = prune(now=seeded["now"])

    # The newest three of the application keep everything, and so do the running one and the pointed one.
    for name in ("new1", "new2", "new3", "running60", "pointed45"):
        assert counts(hello[name]) == WHOLE, name
        hello[name].refresh_from_db()
        assert hello[name].metadata == {"note": "seeded"}, name
    # Beyond the newest three: logs go after 10 days...
    assert counts(hello["fresh8"]) == WHOLE
    for name in ("logs12", "logs15"):
        assert counts(hello[name]) == (len(STAGES), 0), name
        hello[name].refresh_from_db()
        assert hello[name].metadata == {"note": "seeded"}
    # ... stages and metadata after 30; the deployment row and its trigger stay.
    for name in ("old40", "old50"):
        deployment = Deployment.objects.get(pk=hello[name].pk)
        assert counts(deployment) == (0, 0), name
        assert set(deployment.metadata) == {DETAILS_PRUNED_KEY}
        assert deployment.commit_hash == hello[name].commit_hash
        assert deployment.status == hello[name].status
    # An application with fewer deployments than the number kept loses nothing.
    for deployment in seeded["world"]:
        assert counts(deployment) == WHOLE

    remaining_commands = set(Command.objects.values_list("pk", flat=True))
    assert remaining_commands == {
        seeded["commands"]["handled_new"].pk,
        seeded["commands"]["unhandled_old"].pk,
    }

    remaining_audit = set(AuditEvent.objects.filter(verb="test.seeded").values_list("pk", flat=True))
    assert remaining_audit == {row.pk for row in seeded["audits"]["new"]}

    assert summary.deployments_details_pruned == 2
    assert summary.deployments_logs_pruned == 2
    assert summary.stages == 2 * len(STAGES)
    assert summary.stage_logs == 4 * len(STAGES) * LOGS
    assert summary.commands == 3
    assert summary.audit_events == 3


@override_settings(**RETENTION)
def test_a_dry_run_counts_the_same_and_deletes_nothing(seeded):
    before = (
        StageLogBlock.objects.count(),
        Stage.objects.count(),
        Command.objects.count(),
        AuditEvent.objects.count(),
    )
    dry = prune(now=seeded["now"], dry_run=True)
    assert before == (
        StageLogBlock.objects.count(),
        Stage.objects.count(),
        Command.objects.count(),
        AuditEvent.objects.count(),
    )
    assert not Deployment.objects.filter(metadata__has_key=DETAILS_PRUNED_KEY).exists()
    real = prune(now=seeded["now"])
    for field in (
        "deployments_details_pruned",
        "deployments_logs_pruned",
        "stages",
        "stage_logs",
        "commands",
    ):
        assert getattr(dry, field) == getattr(real, field), field
    assert dry.audit_events == real.audit_events


@override_settings(**RETENTION)
def test_a_second_run_finds_nothing_left_to_do(seeded):
    prune(now=seeded["now"])
    again = prune(now=seeded["now"])
    assert (again.stage_logs, again.stages, again.commands, again.audit_events) == (0, 0, 0, 0)
    assert again.deployments_details_pruned == 0


@override_settings(**RETENTION)
def test_every_delete_is_a_small_primary_key_range(seeded):
    deletes: list[tuple[str, int]] = []

    def watch(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.upper().startswith("DELETE"):
            deletes.append((sql, context["cursor"].rowcount))
        return result

    with connection.execute_wrapper(watch):
        summary = prune(now=seeded["now"])
    batch = RETENTION["PIPEPORTAL_RETENTION_BATCH_SIZE"]
    assert sum(rows for _, rows in deletes) >= summary.stage_logs + summary.stages + summary.audit_events
    for sql, rows in deletes:
        assert rows <= batch, (sql, rows)
        table = re.search(r'DELETE FROM [`"]?(\w+)', sql).group(1)
        if rows:
            # Bounded by a primary-key range, or by a list of at most `batch` keys read through an index
            # (Command's UUID keys; stages, which Django deletes by the keys it collected from a range).
            in_range = ">=" in sql and "<=" in sql
            assert in_range or (
                table in ("deployments_command", "deployments_stage") and sql.count("%s") <= batch
            ), sql
    # Batches of two rows: many short statements rather than one long one.
    assert len([1 for sql, rows in deletes if rows and "stagelogblock" in sql]) >= summary.stage_logs // batch


@override_settings(
    **{**RETENTION, "PIPEPORTAL_RETENTION_STAGE_LOG_DAYS": 0, "PIPEPORTAL_RETENTION_AUDIT_DAYS": 0}
)
def test_zero_days_keeps_forever(seeded):
    summary = prune(now=seeded["now"])
    assert counts(seeded["hello"]["logs12"]) == WHOLE
    assert summary.audit_events == 0
    assert AuditEvent.objects.filter(verb="test.seeded").count() == 5
    assert summary.cutoffs["stage_logs"] is None


@override_settings(**RETENTION)
def test_the_command_prints_a_json_summary(seeded):
    out = StringIO()
    call_command("prune", "--dry-run", "--json", stdout=out)
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    assert summary["dry_run"] is True
    assert summary["keep_deployments"] == 3
    assert summary["commands"] == 3
    assert Command.objects.count() == 5

    out = StringIO()
    call_command("prune", stdout=out)
    assert "deleted:" in out.getvalue()
    assert Command.objects.count() == 2


def test_the_command_refuses_a_batch_size_below_one(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--batch-size"):
        call_command("prune", "--batch-size", "0")


@override_settings(**RETENTION)
def test_the_beat_task_skips_while_another_run_holds_the_lock(seeded):
    cache.set(LOCK_KEY, "1", 60)
    try:
        assert prune_task() is None
        assert Command.objects.count() == 5
    finally:
        cache.delete(LOCK_KEY)
    result = prune_task()
    assert result["commands"] == 3
    assert cache.get(LOCK_KEY) is None


def test_expired_sessions_go_and_live_ones_stay(clients, project):
    from django.contrib.sessions.models import Session

    from apps.accounts.models import PortalSession

    now = timezone.now()
    live_keys = set(PortalSession.objects.values_list("session_key", flat=True))
    assert len(live_keys) == 4  # the personas' logged-in clients
    expired_keys = []
    for i in range(3):
        key = f"expired{i:033d}"
        Session.objects.create(session_key=key, session_data="e30:", expire_date=now - timedelta(seconds=1))
        PortalSession.objects.create(
            session_key=key, project=project, username=f"gone{i}", role="Viewer", method="x", expires_at=now
        )
        expired_keys.append(key)

    dry = prune(now=now + timedelta(seconds=1), dry_run=True, batch_size=2)
    assert (dry.sessions, dry.portal_sessions) == (3, 3)
    summary = prune(now=now + timedelta(seconds=1), batch_size=2)
    assert (summary.sessions, summary.portal_sessions) == (3, 3)
    assert not Session.objects.filter(session_key__in=expired_keys).exists()
    assert set(PortalSession.objects.values_list("session_key", flat=True)) == live_keys
    assert Session.objects.filter(session_key__in=live_keys).count() == 4
    # The personas are still logged in.
    assert clients["viewer"].get("/account/").status_code == 200
