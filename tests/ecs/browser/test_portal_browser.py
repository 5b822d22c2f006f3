"""The ECS pieces of the portal in headless Chromium, with screenshots to look at: a plan preview, the
application page's live state during a canary and with drift, the deployment page mid-canary with its
traffic split.

The deployment runs for real (in-process piped, moto server, real Git); the browser reads the live server.
"""

import pytest

from apps.pipedagent.livestate import Watchers
from apps.projects.choices import Role
from apps.projects.principal import Principal
from tests.browser.conftest import PHONE

from ..conftest import (
    SEED_SERVICE,
    add_app,
    clients,
    deploy_first_version,
    finish_stage,
    push_new_version,
    seed_files,
)

pytestmark = pytest.mark.browser

PIPELINE = [
    {"name": "ECS_CANARY_ROLLOUT", "with": {"scale": 50}},
    {"name": "ECS_TRAFFIC_ROUTING", "with": {"canary": 10}},
    {"id": "approve", "name": "WAIT_APPROVAL"},
    {"name": "ECS_PRIMARY_ROLLOUT"},
    {"name": "ECS_TRAFFIC_ROUTING", "with": {"primary": 100}},
    {"name": "ECS_CANARY_CLEAN"},
]


def test_live_state_traffic_split_drift_and_preview_in_the_browser(
    portal, project, piped, ecs_agent, manifests, aws, ecs_values
):
    app = add_app(project, piped)
    agent = ecs_agent()
    deploy_first_version(agent, manifests, seed_files(ecs_values, pipeline=PIPELINE), "apps/hello")
    deployment = push_new_version(
        agent, manifests, seed_files(ecs_values, image_tag="v2", pipeline=PIPELINE), "apps/hello"
    )
    viewer = Principal(project_id=project.id, kind="user", name="victor", role=Role.VIEWER)
    editor = Principal(project_id=project.id, kind="user", name="erin", role=Role.EDITOR)

    # Planned, not started yet: the plan preview is open.
    page = portal.new_page(session_key=portal.session_for(project, viewer))
    page.goto(portal.url(f"/deployments/{deployment.id}/"))
    preview = page.locator("#plan-preview")
    assert "planned" in preview.locator("summary").inner_text()
    assert preview.locator(".d-add", has_text="hogehoge:v2").count() == 1
    assert preview.locator(".preview-stages li").count() == 6
    portal.screenshot(page, "ecs-plan-preview-planned")

    finish_stage(agent, deployment.id, "stage-0")
    finish_stage(agent, deployment.id, "stage-1")
    agent.step(str(deployment.id))  # waiting for approval, 10 % on the canary
    Watchers(agent.scheduler).live_state_once()

    page.goto(portal.url(f"/applications/{app.id}/"))
    tree = page.locator("#live-state")
    assert tree.locator(".task-set").count() == 2
    newest = tree.locator(".version-row.newest")
    assert "hogehoge:v2" in newest.inner_text() and "10 % of traffic" in newest.inner_text()
    assert "demo-canary 10 %" in tree.locator(".split-note").inner_text()
    portal.screenshot(page, "ecs-application-live-state-canary")

    editor_page = portal.new_page(session_key=portal.session_for(project, editor))
    editor_page.goto(portal.url(f"/deployments/{deployment.id}/"))
    canary = editor_page.locator(".canary")
    assert "demo-primary 90 % · demo-canary 10 %" in canary.inner_text()
    assert "hogehoge:2 hogehoge:v2 at 50 % · 1 task · 10 % of traffic" in canary.inner_text()
    assert editor_page.locator("button.approve").count() == 1
    portal.screenshot(editor_page, "ecs-deployment-mid-canary")
    phone = portal.new_page(viewport=PHONE, session_key=portal.session_for(project, viewer))
    phone.goto(portal.url(f"/deployments/{deployment.id}/"))
    portal.screenshot(phone, "ecs-deployment-mid-canary-phone")

    editor_page.click("button.approve")
    editor_page.wait_for_selector("ul.messages .msg-success")
    agent.poll_commands()
    done = agent.run(str(deployment.id), lambda d: d["status"] in ("SUCCESS", "FAILURE"))
    assert done["status"] == "SUCCESS", done["status_reason"]

    # Someone scales the service by hand: drift.
    ecs, _ = clients(aws.endpoint)
    ecs.update_service(cluster=ecs_values["CLUSTER_ARN"], service=SEED_SERVICE, desiredCount=5)
    agent.scheduler.refresh_apps()
    watchers = Watchers(agent.scheduler)
    watchers.drift_once()
    watchers.live_state_once()
    page.goto(portal.url(f"/applications/{app.id}/"))
    drift = page.locator("#drift")
    assert "Out of sync" in drift.inner_text()
    assert drift.locator(".d-del").filter(has_text="desiredCount: 5").count() == 1
    assert drift.locator(".d-add").filter(has_text="desiredCount: 2").count() == 1
    assert page.locator(".sync-card .badge").first.inner_text().strip() == "Out of sync"
    portal.screenshot(page, "ecs-application-drift")
    phone.goto(portal.url(f"/applications/{app.id}/"))
    portal.screenshot(phone, "ecs-application-drift-phone")
