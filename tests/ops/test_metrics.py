"""/metrics on seeded data: deployments, stage durations, approvals waiting, pipeds, API latency, token."""

from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from apps.deployments.choices import StageStatus
from apps.pipeds.models import Piped

from .conftest import seed_deployment

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def scrape(client: Client | None = None, **headers) -> dict:
    """Families by name, parsed from the OpenMetrics answer (the format Prometheus asks for first)."""
    response = (client or Client()).get("/metrics", HTTP_ACCEPT=OPENMETRICS, **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/openmetrics-text")
    return {family.name: family for family in parse_openmetrics(response.content.decode())}


def samples(family, name: str | None = None) -> dict:
    return {
        tuple(sorted(s.labels.items())): s.value for s in family.samples if name is None or s.name == name
    }


@pytest.fixture
def seeded(application):
    """Two finished deployments and one waiting for approval, with stages of known durations."""
    seed_deployment(
        application,
        age=timedelta(hours=3),
        stages=[("ECS_SYNC", StageStatus.SUCCESS, 42.0)],
    )
    seed_deployment(
        application,
        status="FAILURE",
        age=timedelta(hours=2),
        stages=[
            ("ECS_CANARY_ROLLOUT", StageStatus.SUCCESS, 20.0),
            ("ECS_TRAFFIC_ROUTING", StageStatus.FAILURE, 3.0),
        ],
    )
    seed_deployment(
        application,
        status="RUNNING",
        age=timedelta(minutes=30),
        stages=[
            ("ECS_CANARY_ROLLOUT", StageStatus.SUCCESS, 100.0),
            ("WAIT_APPROVAL", StageStatus.RUNNING, 0.0),
            ("ECS_PRIMARY_ROLLOUT", StageStatus.NOT_STARTED_YET, 0.0),
        ],
    )
    # Outside the default 24 h window: must not count.
    seed_deployment(application, age=timedelta(days=3), stages=[("ECS_SYNC", StageStatus.SUCCESS, 7.0)])
    return application


def test_it_counts_deployments_by_application_and_status(seeded):
    families = scrape()
    values = samples(families["pipeportal_deployments"])

    def key(status):
        return (("application", "hello"), ("project", "demo"), ("status", status))

    assert values[key("SUCCESS")] == 2
    assert values[key("FAILURE")] == 1
    assert values[key("RUNNING")] == 1
    assert key("PENDING") not in values
    assert samples(families["pipeportal_metrics_database_up"]) == {(): 1.0}


def test_it_shows_the_stage_durations_of_completed_stages(seeded):
    family = scrape()["pipeportal_stage_duration_seconds"]
    assert family.type == "gaugehistogram"
    buckets = samples(family, "pipeportal_stage_duration_seconds_bucket")
    counts = samples(family, "pipeportal_stage_duration_seconds_gcount")
    sums = samples(family, "pipeportal_stage_duration_seconds_gsum")

    sync = (("stage", "ECS_SYNC"), ("status", "SUCCESS"))
    assert counts[sync] == 1  # the 3-day-old one is outside the window
    assert sums[sync] == pytest.approx(42.0)
    assert buckets[(("le", "30.0"), *sync)] == 0
    assert buckets[(("le", "60.0"), *sync)] == 1
    assert buckets[(("le", "+Inf"), *sync)] == 1

    canary = (("stage", "ECS_CANARY_ROLLOUT"), ("status", "SUCCESS"))
    assert counts[canary] == 2
    assert sums[canary] == pytest.approx(120.0)
    assert buckets[(("le", "30.0"), *canary)] == 1
    assert buckets[(("le", "120.0"), *canary)] == 2

    failed = (("stage", "ECS_TRAFFIC_ROUTING"), ("status", "FAILURE"))
    assert counts[failed] == 1
    assert buckets[(("le", "5.0"), *failed)] == 1
    # Running and not-started stages have no duration yet.
    assert not any(dict(labels).get("stage") in ("WAIT_APPROVAL", "ECS_PRIMARY_ROLLOUT") for labels in counts)


@override_settings(PIPEPORTAL_METRICS_STAGE_WINDOW_SECONDS=7 * 24 * 3600)
def test_the_stage_window_is_a_setting(seeded):
    counts = samples(
        scrape()["pipeportal_stage_duration_seconds"], "pipeportal_stage_duration_seconds_gcount"
    )
    assert counts[(("stage", "ECS_SYNC"), ("status", "SUCCESS"))] == 2


def test_it_counts_approvals_waiting(seeded):
    families = scrape()
    assert samples(families["pipeportal_approvals_waiting"]) == {(("project", "demo"),): 1}
    oldest = samples(families["pipeportal_approval_oldest_wait_seconds"])[(("project", "demo"),)]
    # The approval stage started 30 min - 100 s ago.
    assert 1600 < oldest < 1800


def test_it_reports_piped_heartbeats(project, piped):
    other = Piped.objects.create(project=project, name="never-seen")
    Piped.objects.create(
        project=project, name="switched-off", disabled=True, last_heartbeat_at=timezone.now()
    )
    Piped.objects.filter(pk=piped.pk).update(last_heartbeat_at=timezone.now() - timedelta(seconds=15))
    families = scrape()
    ages = samples(families["pipeportal_piped_heartbeat_age_seconds"])
    assert set(ages) == {(("piped", "piped-1"), ("project", "demo"))}
    assert 14 <= ages[(("piped", "piped-1"), ("project", "demo"))] < 60
    assert samples(families["pipeportal_pipeds"]) == {
        (("project", "demo"), ("status", "ONLINE")): 1,
        (("project", "demo"), ("status", "OFFLINE")): 1,
    }
    assert other.last_heartbeat_at is None


def test_it_measures_api_latency_by_route_name(db):
    def api_counts() -> dict:
        family = scrape().get("pipeportal_api_request_duration_seconds")
        if family is None:
            return {}
        return {
            (dict(labels)["route"], dict(labels)["method"], dict(labels)["status"]): value
            for labels, value in samples(family, "pipeportal_api_request_duration_seconds_count").items()
        }

    # The histogram lives as long as the process, so compare before and after.
    before = api_counts()
    client = Client()
    client.get("/api/v1/openapi.json")
    client.get("/api/v1/no-such-thing/12345")
    after = api_counts()
    grown = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}
    assert grown == {("api-v1:openapi-json", "GET", "2xx"): 1, ("unmatched", "GET", "4xx"): 1}
    # Unknown paths are one series, not one per path.
    assert not any("12345" in route for route, _, _ in after)


def test_it_also_answers_in_the_classic_text_format(seeded):
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    names = {family.name for family in parse_text(response.content.decode())}
    assert {"pipeportal_deployments", "pipeportal_approvals_waiting", "pipeportal_pipeds"} <= names


@override_settings(PIPEPORTAL_METRICS_TOKEN="s3cret-token-for-tests")
def test_it_requires_the_bearer_token_when_one_is_set(db):
    client = Client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Basic czNjcmV0").status_code == 401
    families = scrape(client, HTTP_AUTHORIZATION="Bearer s3cret-token-for-tests")
    assert "pipeportal_deployments" in families
    # The probes stay open: the ALB carries no token.
    assert client.get("/healthz").status_code == 200
