"""What the pages show: buttons only to those who may press them, approval state, sync state, versions,
filters kept in the URL, relative times with the exact time on hover."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse

from apps.applications.choices import SyncStatus
from apps.applications.models import Application
from apps.deployments.choices import CommandStatus, CommandType, DeploymentStatus
from apps.deployments.models import Command

from .factories import make_deployment

APPROVE = 'class="primary approve"'


def deployment_page(world, persona, deployment, **query) -> str:
    response = world.clients[persona].get(reverse("webui:deployment", args=[deployment.id]), query)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize(("persona", "may_act"), [("admin", True), ("editor", True), ("viewer", False)])
def test_it_offers_approve_cancel_and_skip_only_to_those_allowed(world, persona, may_act):
    waiting = deployment_page(world, persona, world.waiting)
    assert (APPROVE in waiting) is may_act
    assert (reverse("webui:deployment_cancel", args=[world.waiting.id]) in waiting) is may_act
    assert ('value="yes"' in waiting and 'value="no"' in waiting) is may_act
    sleeping = deployment_page(world, persona, world.sleeping)
    assert (reverse("webui:stage_skip", args=[world.sleeping.id, "wait"]) in sleeping) is may_act
    if not may_act:
        assert "Your role may watch but not approve." in waiting


def test_it_says_who_approved_when_and_how_many_are_still_needed(world):
    deployment = make_deployment(world.second_app, running_index=2, min_approvers=2, approved_by=["alice"])
    Command.objects.create(
        project_id="demo",
        piped_id=deployment.piped_id,
        deployment=deployment,
        stage_id="approve",
        type=CommandType.APPROVE_STAGE,
        commander="alice",
        status=CommandStatus.SUCCEEDED,
    )
    page = deployment_page(world, "editor", deployment)
    assert "Needs 1 more approval" in page
    assert "(1 of 2 recorded)" in page
    approvals = re.search(r'<ul class="approvals">(.*?)</ul>', page, re.S).group(1)
    assert "alice" in approvals
    assert re.search(r'<time datetime="[^"]+" title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"', approvals)
    assert APPROVE in page  # erin has not approved yet

    world.clients["editor"].post(reverse("webui:stage_approve", args=[deployment.id, "approve"]))
    page = deployment_page(world, "editor", deployment)
    assert "erin" in re.search(r'<ul class="approvals">(.*?)</ul>', page, re.S).group(1)
    assert "the piped records it within seconds" in page
    assert APPROVE not in page
    assert "You have approved" in page
    # Alice approved already: the button is not offered to her again.
    assert APPROVE not in deployment_page(world, "admin", deployment)


def test_it_names_the_approvers_when_the_stage_lists_them(world):
    deployment = make_deployment(world.second_app, running_index=2, approvers=["erin", "apikey:ci"])
    page = deployment_page(world, "viewer", deployment)
    assert "Approvers: erin, apikey:ci." in page
    assert APPROVE in deployment_page(world, "editor", deployment)
    assert APPROVE not in deployment_page(world, "admin", deployment)  # alice is not listed


def test_it_draws_the_pipeline_with_one_colour_per_state(world):
    page = deployment_page(world, "viewer", world.waiting)
    tones = re.findall(r'<li class="stage tone-([a-z-]+)', page)
    assert tones == ["success", "success", "waiting", "pending", "pending", "pending"]
    assert (
        '<span class="badge big tone-waiting"><span class="dot" aria-hidden="true"></span>Waiting for approval'
        in page
    )
    assert 'hx-trigger="every 2s"' in page  # the live part refreshes itself


def test_it_shows_a_failed_deployment_with_its_rollback_and_the_failed_stage_log(world):
    failed = make_deployment(
        world.second_app, status=DeploymentStatus.FAILURE, running_index=1, rollback=True
    )
    page = deployment_page(world, "viewer", failed)
    assert re.findall(r'<li class="stage tone-([a-z-]+)', page) == [
        "success",
        "failure",
        "pending",
        "pending",
        "pending",
        "pending",
        "success",
    ]
    assert "Rollback" in page
    assert "Log · ECS traffic routing" in page  # the failed stage is the one shown
    assert "task set did not become steady" in page
    assert "hx-trigger" not in page  # completed: nothing polls
    assert 'class="badge big tone-failure"' in page


def test_it_shows_the_log_of_the_chosen_stage(world):
    page = deployment_page(world, "viewer", world.waiting, stage="canary-traffic")
    assert "Log · ECS traffic routing" in page
    assert "ECS_TRAFFIC_ROUTING: step 3 of 3" in page
    assert '<li class="stage tone-success selected">' in page


def test_it_shows_the_application_list_row_with_version_and_last_deployment(world):
    Application.objects.filter(pk=world.app.pk).update(
        sync_status=SyncStatus.OUT_OF_SYNC, sync_short_reason="desiredCount differs"
    )
    page = world.clients["viewer"].get(reverse("webui:applications")).content.decode()
    row = re.search(rf'href="/applications/{world.app.id}/">hello</a>(.*?)</tr>', page, re.S).group(1)
    assert "Out of sync" in row and "desiredCount differs" in row
    assert ">v1.3.0<" in row  # running: the last successful deployment's image tag
    assert "Waiting for approval" in row  # the most recent deployment
    assert "env:dev" in row


def test_it_keeps_filters_in_the_url_across_pages(world):
    for i in range(55):
        make_deployment(
            world.second_app,
            status=DeploymentStatus.SUCCESS,
            created_ago=timedelta(days=1, minutes=i),
            log_lines=0,
            stages=[],
        )
    client = world.clients["viewer"]
    page = client.get(
        reverse("webui:deployments"), {"status": "SUCCESS", "labels": "team:pay"}
    ).content.decode()
    assert page.count('class="strong" href="/deployments/') == 50
    older = re.search(r'href="(\?[^"]+)" rel="next"', page).group(1).replace("&amp;", "&")
    assert "status=SUCCESS" in older and "labels=team%3Apay" in older and "cursor=" in older
    second = client.get(reverse("webui:deployments") + older).content.decode()
    assert second.count('class="strong" href="/deployments/') == 5
    assert 'rel="next"' not in second
    first_ids = set(re.findall(r'href="/deployments/([0-9a-f-]{36})/"', page))
    second_ids = set(re.findall(r'href="/deployments/([0-9a-f-]{36})/"', second))
    assert not first_ids & second_ids


def test_it_filters_deployments_by_application_name_or_id(world):
    client = world.clients["viewer"]
    by_name = client.get(reverse("webui:deployments"), {"application": "HELLO"}).content.decode()
    by_id = client.get(reverse("webui:deployments"), {"application": str(world.app.id)}).content.decode()
    for page in (by_name, by_id):
        names = re.findall(r'class="strong" href="/deployments/[^"]+">([^<]+)<', page)
        assert names == ["hello", "hello"]


def test_it_filters_applications_by_labels_and_status(world):
    client = world.clients["viewer"]

    def names(query):
        page = client.get(reverse("webui:applications"), query).content.decode()
        return re.findall(r'class="strong" href="/applications/[^"]+">([^<]+)<', page)

    assert names({}) == ["hello", "payments"]
    assert names({"labels": "env:prod"}) == ["payments"]
    assert names({"labels": "env:prod,team:web"}) == []
    assert names({"name": "ELL"}) == ["hello"]
    assert names({"kind": "ECS", "sync_status": "UNKNOWN"}) == ["hello", "payments"]


@pytest.mark.parametrize(("persona", "may_act"), [("admin", True), ("editor", True), ("viewer", False)])
def test_it_offers_application_actions_only_to_those_allowed(world, persona, may_act):
    page = world.clients[persona].get(reverse("webui:application", args=[world.app.id])).content.decode()
    for name in ("application_sync", "application_disable", "application_delete", "application_edit"):
        assert (reverse(f"webui:{name}", args=[world.app.id]) in page) is may_act
    assert ('value="QUICK_SYNC"' in page) is may_act  # the strategy choice comes with the Sync button


def test_it_answers_unknown_urls_and_expired_forms_with_portal_pages(world):
    response = world.clients["viewer"].get("/applications/not-a-uuid/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "<title>Not found · PipePortal</title>" in page
    assert 'title="Your role in this project">Viewer</span>' in page

    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.cookies = world.clients["editor"].cookies
    response = strict.post(reverse("webui:application_sync", args=[world.app.id]), {"strategy": "AUTO"})
    assert response.status_code == 403
    assert "This form expired" in response.content.decode()


def test_it_keeps_saying_who_approved_after_the_stage(world):
    done = make_deployment(
        world.second_app, status=DeploymentStatus.SUCCESS, approved_by=["erin", "alice"], min_approvers=2
    )
    page = deployment_page(world, "viewer", done)
    assert '<span class="stage-desc">✓ erin, alice</span>' in page


def test_a_long_config_path_wraps_at_its_slashes(world):
    page = (
        world.clients["viewer"].get(reverse("webui:application", args=[world.second_app.id])).content.decode()
    )
    assert "apps/<wbr>payments/<wbr>app.pipecd.yaml" in page
