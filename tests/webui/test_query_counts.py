"""List pages cost the same number of queries for 5 rows as for 50: no query per row."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import PortalSession
from apps.applications.services import add_application
from apps.deployments.choices import DeploymentStatus
from apps.pipeds.services import register_piped
from apps.projects import audit
from apps.projects.choices import APIKeyRole, Role
from apps.projects.principal import system_principal
from apps.projects.services import add_user_group, create_api_key

from .factories import make_deployment, report_piped


def seed(project, piped, what: str, start: int, stop: int) -> None:
    """Rows `start` to `stop - 1` of one list, each with what makes its line rich (deployments, labels,
    versions, a waiting approval)."""
    system = system_principal(project.id)
    for i in range(start, stop):
        if what in ("applications", "deployments"):
            app = add_application(
                system,
                project,
                name=f"app-{i:03d}",
                piped_id=piped.id,
                platform_provider="ecs-dev",
                repo_id="manifests",
                path=f"services/app-{i:03d}",
                labels={"env": "prod", "n": str(i)},
            )
            make_deployment(
                app, status=DeploymentStatus.SUCCESS, stages=[("sync", "ECS_SYNC", "")], log_lines=0
            )
            make_deployment(app, running_index=2, log_lines=0)
        elif what == "settings_pipeds":
            report_piped(register_piped(system, project, name=f"piped-{i:03d}")[0])
        elif what == "settings_user_groups":
            add_user_group(system, project, sso_group=f"group-{i:03d}", role=Role.VIEWER)
        elif what == "settings_api_keys":
            create_api_key(system, project, name=f"key-{i:03d}", role=APIKeyRole.READ_ONLY)
        elif what == "settings_audit":
            audit.record(system, "test.event", project_id=project.id, object_type="app", object_id=str(i))
        elif what == "settings_sessions":
            PortalSession.objects.create(
                session_key=f"s{i:039d}",
                project=project,
                username=f"user-{i}",
                role=Role.VIEWER,
                method="test",
                expires_at=timezone.now() + timedelta(hours=1),
            )


LISTS = [
    ("applications", {}),
    ("applications", {"labels": "env:prod", "sync_status": "UNKNOWN", "name": "app"}),
    ("deployments", {}),
    ("deployments", {"status": "RUNNING", "labels": "env:prod"}),
    ("settings_pipeds", {}),
    ("settings_user_groups", {}),
    ("settings_api_keys", {}),
    ("settings_audit", {}),
    ("settings_sessions", {}),
]


def count_queries(client, url, query) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, query)
    assert response.status_code == 200
    return len(captured)


@pytest.mark.parametrize(
    ("name", "query"), LISTS, ids=[f"{n}-{'filtered' if q else 'all'}" for n, q in LISTS]
)
def test_a_list_page_costs_the_same_for_5_and_50_rows(
    project, piped, clients, name, query, django_assert_max_num_queries
):
    report_piped(piped)
    url = reverse(f"webui:{name}")
    seed(project, piped, name, 0, 5)
    with_5 = count_queries(clients["admin"], url, query)
    assert with_5 <= 12, f"{name} needs {with_5} queries for 5 rows"
    seed(project, piped, name, 5, 50)
    with django_assert_max_num_queries(with_5):
        response = clients["admin"].get(url, query)
    assert response.status_code == 200
    body = response.content.decode()
    if name == "applications":
        assert body.count('class="strong" href="/applications/') == 50
    if name == "deployments":
        assert body.count('class="strong" href="/deployments/') == 50  # a full page, of 100 (or 50 running)


def test_the_deployment_page_costs_the_same_for_3_and_30_stages(
    project, piped, clients, django_assert_max_num_queries
):
    report_piped(piped)
    system = system_principal(project.id)
    app = add_application(
        system,
        project,
        name="big",
        piped_id=piped.id,
        platform_provider="ecs-dev",
        repo_id="manifests",
        path="big",
    )
    small = make_deployment(
        app, running_index=1, stages=[(f"s{i}", "WAIT", "") for i in range(3)], log_lines=3
    )
    large = make_deployment(
        app, running_index=20, stages=[(f"s{i}", "WAIT", "") for i in range(30)], log_lines=30
    )
    small_count = count_queries(clients["viewer"], reverse("webui:deployment", args=[small.id]), {})
    with django_assert_max_num_queries(small_count):
        clients["viewer"].get(reverse("webui:deployment", args=[large.id]))
    live_count = count_queries(
        clients["viewer"], reverse("webui:deployment", args=[small.id]), {"fragment": "live"}
    )
    with django_assert_max_num_queries(live_count):
        clients["viewer"].get(reverse("webui:deployment", args=[large.id]), {"fragment": "live"})
