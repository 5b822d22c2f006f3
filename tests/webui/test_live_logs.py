"""A running stage's log grows on the open page: the tail poll sends only the lines after the last one shown
(one query, whatever the log's length), and stops once the stage is over. Also: the banner of a deployment
whose details retention removed, and the rollback stage shown once it runs."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.deployments.choices import DeploymentStatus, StageStatus
from apps.deployments.models import Deployment, Stage
from apps.deployments.services import transition_deployment, transition_stage
from apps.ops.housekeeping import prune
from apps.webui import queries

from .factories import append_log, make_deployment

HTMX = {"HTTP_HX_REQUEST": "true"}


def running_stage(world) -> Stage:
    """The sleeping deployment's WAIT stage: running, with 3 log lines (indexes 0-2)."""
    return Stage.objects.get(deployment=world.sleeping, stage_id="wait")


def tail(world, stage: Stage, after: str, persona: str = "viewer"):
    url = reverse("webui:stage_logs", args=[stage.deployment_id, stage.stage_id])
    return world.clients[persona].get(url, {"after": after}, **HTMX)


def poller(body: str) -> str:
    return re.search(r'<div id="log-tail-\d+" class="log-tail"[^>]*></div>', body, re.S).group(0)


def appended(body: str, stage: Stage) -> list[str]:
    """The log lines a tail answer appends to the stage's pane."""
    found = re.search(rf'<div id="log-lines-{stage.pk}" hx-swap-oob="beforeend">(.*?)</div>\n', body, re.S)
    if not found:
        return []
    return re.findall(r'data-at="([\d.]+)"', found.group(1))


def test_the_page_shows_the_log_and_a_tail_that_goes_on_after_its_last_line(world):
    stage = running_stage(world)
    page = world.clients["viewer"].get(reverse("webui:deployment", args=[world.sleeping.id])).content.decode()
    pane = re.search(
        rf'<div class="log" id="log-lines-{stage.pk}" role="log"[^>]*data-follow>(.*?)</div>\s*<div id="log-tail',
        page,
        re.S,
    )
    assert pane, "the log pane follows its tail"
    assert re.findall(r'data-at="([\d.]+)"', pane.group(1)) == ["0.0", "0.1", "0.2"]
    tail_div = poller(page)
    assert "/stages/wait/logs/?after=0.2" in tail_div
    assert 'hx-trigger="every 2s"' in tail_div and 'hx-swap="outerHTML"' in tail_div
    # The pane itself never polls: only the tail does, so the shown lines are never sent again.
    section = re.search(r'<section id="stage-log"[^>]*>', page).group(0)
    assert "hx-get" not in section and "hx-trigger" not in section


def test_the_tail_sends_only_new_lines_and_moves_on(world):
    stage = running_stage(world)
    nothing = tail(world, stage, "0.2")
    assert nothing.status_code == 200
    body = nothing.content.decode()
    assert appended(body, stage) == []
    assert "after=0.2" in poller(body) and "hx-trigger" in poller(body)

    append_log(stage, 5, text="pulling image")
    body = tail(world, stage, "0.2").content.decode()
    assert appended(body, stage) == ["0.3", "0.4", "0.5", "0.6", "0.7"]
    assert "pulling image 3" in body and "pulling image 7" in body
    assert "WAIT: step 3 of 3" not in body  # already on the page: not sent again
    assert "after=0.7" in poller(body)
    # The stage's status and reason come along, so the pane's header stays true.
    assert f'<div id="stage-log-head-{stage.pk}" hx-swap-oob="true">' in body

    body = tail(world, stage, "0.7").content.decode()
    assert appended(body, stage) == []


def test_a_new_run_of_the_stage_gets_a_divider(world):
    stage = running_stage(world)
    append_log(stage, 2, run=1, start=0, text="after the restart")
    body = tail(world, stage, "0.2").content.decode()
    assert appended(body, stage) == ["1.0", "1.1"]
    assert '<div class="line run-divider">Run 2 of this stage</div>' in body
    assert "after=1.1" in poller(body)
    # Over the whole log too, in (run, index) order.
    blocks, truncated = queries.stage_log_blocks(stage)
    assert [(b.retried_count, b.index) for b in blocks] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    assert not truncated


def test_the_tail_query_pages_through_a_long_burst(world):
    stage = running_stage(world)
    append_log(stage, 7)
    first, more = queries.stage_log_tail(stage, (0, 2), limit=4)
    assert [b.index for b in first] == [3, 4, 5, 6] and more
    rest, more = queries.stage_log_tail(stage, (0, 6), limit=4)
    assert [b.index for b in rest] == [7, 8, 9] and not more
    everything, _ = queries.stage_log_tail(stage, None)
    assert len(everything) == 10


def test_the_tail_stops_a_little_after_the_stage_ends(world):
    stage = running_stage(world)
    append_log(stage, 1, text="done waiting")
    transition_stage(stage.pk, StageStatus.SUCCESS, "Waited 5 minutes")
    body = tail(world, stage, "0.2").content.decode()
    assert appended(body, stage) == ["0.3"]
    assert "hx-trigger" in poller(body)  # a late batch may still come: one more look
    assert "Waited 5 minutes" in body and "tone-success" in body

    Stage.objects.filter(pk=stage.pk).update(completed_at=timezone.now() - timedelta(seconds=30))
    body = tail(world, stage, "0.3").content.decode()
    assert "hx-trigger" not in poller(body) and "hx-get" not in poller(body)


def test_a_bad_tail_position_is_refused_with_the_reason(world):
    stage = running_stage(world)
    for bad in ("x", "1", "0.-1", "0.1.2", "9" * 30):
        response = tail(world, stage, bad)
        assert response.status_code == 400, bad
        assert "expected &#x27;start&#x27; or &lt;run&gt;.&lt;index&gt;" in response.content.decode()
    assert tail(world, stage, "start").status_code == 200


def test_the_tail_of_an_empty_log_starts_at_the_start(world):
    stage = Stage.objects.get(deployment=world.sleeping, stage_id="sync")
    transition_stage(Stage.objects.get(deployment=world.sleeping, stage_id="wait").pk, StageStatus.SUCCESS)
    transition_stage(stage.pk, StageStatus.RUNNING)
    page = world.clients["viewer"].get(reverse("webui:deployment", args=[world.sleeping.id])).content.decode()
    assert "after=start" in poller(page)
    assert '<p class="log-empty">No log lines yet.</p>' in page
    append_log(stage, 2)
    assert appended(tail(world, stage, "start").content.decode(), stage) == ["0.0", "0.1"]


def test_the_live_fragment_brings_the_next_stages_log_with_its_own_tail(world):
    wait = running_stage(world)
    transition_stage(wait.pk, StageStatus.SUCCESS)
    sync = Stage.objects.get(deployment=world.sleeping, stage_id="sync")
    transition_stage(sync.pk, StageStatus.RUNNING)
    append_log(sync, 4, text="registering task definition")
    url = reverse("webui:deployment", args=[world.sleeping.id])
    body = world.clients["viewer"].get(url, {"fragment": "live", "shown": "wait"}, **HTMX).content.decode()
    assert '<section id="stage-log" class="card log-card" hx-swap-oob="true">' in body
    assert f'id="log-lines-{sync.pk}"' in body
    assert "registering task definition 3" in body
    assert "/stages/sync/logs/?after=0.3" in poller(body)


@pytest.mark.parametrize("grow", [3, 300])
def test_the_tail_and_the_page_cost_the_same_whatever_the_number_of_lines(
    world, grow, django_assert_max_num_queries
):
    stage = running_stage(world)
    page_url = reverse("webui:deployment", args=[world.sleeping.id])
    with CaptureQueriesContext(connection) as page_before:
        world.clients["viewer"].get(page_url)
    with CaptureQueriesContext(connection) as tail_before:
        tail(world, stage, "0.2")
    append_log(stage, grow)
    with django_assert_max_num_queries(len(tail_before)):
        body = tail(world, stage, "0.2").content.decode()
    assert len(appended(body, stage)) == grow
    with django_assert_max_num_queries(len(page_before)):
        page = world.clients["viewer"].get(page_url).content.decode()
    assert page.count('class="line sev-info"') == 3 + grow


def test_a_pruned_deployment_says_when_retention_removed_its_details(world, settings):
    settings.PIPEPORTAL_RETENTION_KEEP_DEPLOYMENTS = 1
    settings.PIPEPORTAL_RETENTION_DEPLOYMENT_DETAIL_DAYS = 30
    old = make_deployment(
        world.second_app, status=DeploymentStatus.SUCCESS, created_ago=timedelta(days=90), tag="v0.1.0"
    )
    make_deployment(world.second_app, status=DeploymentStatus.SUCCESS, created_ago=timedelta(days=1))
    prune()
    old.refresh_from_db()
    assert "details_pruned_at" in old.metadata
    page = world.clients["viewer"].get(reverse("webui:deployment", args=[old.id])).content.decode()
    banner = re.search(r'<p class="notice pruned-banner" role="status">(.*?)</p>', page, re.S).group(1)
    assert "Stage details were removed by retention on" in banner
    assert old.metadata["details_pruned_at"][:10] in banner  # the exact time is in `datetime`
    assert "Its stages were removed by retention." in page
    assert "Release v0.1.0" in page or "v0.1.0" in page  # the trigger and version stay
    kept = world.clients["viewer"].get(reverse("webui:deployment", args=[world.waiting.id])).content.decode()
    assert "pruned-banner" not in kept


def test_the_rollback_stage_shows_once_it_starts(world):
    deployment = make_deployment(world.second_app, running_index=1, rollback=True)
    url = reverse("webui:deployment", args=[deployment.id])
    page = world.clients["viewer"].get(url).content.decode()
    assert "Roll back to the last successful version" not in page and "rollback-label" not in page

    transition_stage(
        Stage.objects.get(deployment=deployment, stage_id="canary-traffic").pk, StageStatus.FAILURE
    )
    transition_deployment(deployment.id, DeploymentStatus.ROLLING_BACK, "Stage canary-traffic failed")
    assert "rollback-label" not in world.clients["viewer"].get(url).content.decode()  # not started yet

    rollback = Stage.objects.get(deployment=deployment, stage_id="rollback")
    transition_stage(rollback.pk, StageStatus.RUNNING)
    append_log(rollback, 2, text="restoring weights")
    page = world.clients["viewer"].get(url).content.decode()
    rolled = re.search(r'<ol class="pipeline rollback" aria-label="Rollback">(.*?)</ol>', page, re.S).group(1)
    assert "tone-running" in rolled and "Rollback" in rolled
    assert "Log · Rollback" in page and "restoring weights 1" in page  # the running stage is followed
    assert Deployment.objects.get(pk=deployment.pk).status == DeploymentStatus.ROLLING_BACK
