"""Prometheus metrics of the control plane, served at /metrics.

Two sources, so that several gunicorn workers (and several tasks behind the ALB) never disagree:
- Everything about deployments, stages, approvals and pipeds is computed at scrape time from a few
  aggregate queries: the database is the truth, whichever process answers the scrape.
- API latency is the only in-process measurement. Under gunicorn the entrypoint sets
  PROMETHEUS_MULTIPROC_DIR, and prometheus_client's multiprocess mode adds up every worker's histogram;
  without it (runserver, tests) the histogram of the answering process is served.
"""

import hmac
import logging
import os
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Case, Count, DurationField, ExpressionWrapper, F, IntegerField, Min, Sum, When
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

logger = logging.getLogger(__name__)

# Seconds. Stages range from a quick ECS_SYNC to a WAIT_APPROVAL that may last its whole 6 h timeout.
STAGE_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 24 * 3600)
API_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# Not in the default registry: the scrape builds its own registry (see `registry_for_scrape`).
API_LATENCY = Histogram(
    "pipeportal_api_request_duration_seconds",
    "Time to answer a request under /api/, by route name, method and status class.",
    ["route", "method", "status"],
    buckets=API_LATENCY_BUCKETS,
    registry=None,
)


def observe_api_request(route: str, method: str, status_code: int, seconds: float) -> None:
    API_LATENCY.labels(route=route, method=method, status=f"{status_code // 100}xx").observe(seconds)


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class DatabaseCollector:
    """Gauges computed from the database at scrape time (cheap aggregates served by indexes)."""

    def collect(self):
        up = GaugeMetricFamily(
            "pipeportal_metrics_database_up", "1 when the database answered the metrics queries, else 0."
        )
        try:
            families = [
                *self.deployments(),
                *self.stage_durations(),
                *self.approvals(),
                *self.pipeds(),
            ]
        except DatabaseError as exc:
            logger.warning("metrics: database queries failed: %s: %s", type(exc).__name__, exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def deployments(self):
        from apps.applications.models import Application
        from apps.deployments.models import Deployment

        # Grouped by application id (index dep_app_status), then named with one query on the applications.
        rows = list(Deployment.objects.order_by().values("application_id", "status").annotate(n=Count("id")))
        names = {
            app["id"]: (app["project_id"], app["name"])
            for app in Application.objects.filter(
                id__in={row["application_id"] for row in rows}, deleted=False
            ).values("id", "project_id", "name")
        }
        counts: dict[tuple[str, str, str], int] = defaultdict(int)
        for row in rows:
            if row["application_id"] in names:
                project_id, name = names[row["application_id"]]
                counts[(project_id, name, row["status"])] += row["n"]
        family = GaugeMetricFamily(
            "pipeportal_deployments",
            "Deployments recorded, by project, application and status (deleted applications left out).",
            labels=["project", "application", "status"],
        )
        for labels, value in sorted(counts.items()):
            family.add_metric(list(labels), value)
        yield family

    def stage_durations(self):
        from apps.deployments.models import Stage

        window = settings.PIPEPORTAL_METRICS_STAGE_WINDOW_SECONDS
        duration = ExpressionWrapper(F("completed_at") - F("started_at"), output_field=DurationField())
        buckets = {
            f"le_{i}": Count(
                Case(When(duration__lte=timedelta(seconds=bound), then=1), output_field=IntegerField())
            )
            for i, bound in enumerate(STAGE_DURATION_BUCKETS)
        }
        rows = (
            Stage.objects.filter(
                completed_at__gte=timezone.now() - timedelta(seconds=window), started_at__isnull=False
            )
            .annotate(duration=duration)
            .order_by()
            .values("name", "status")
            .annotate(total=Count("id"), seconds=Sum("duration"), **buckets)
        )
        family = GaugeHistogramMetricFamily(
            "pipeportal_stage_duration_seconds",
            f"Durations of the stages completed in the last {window} s "
            "(PIPEPORTAL_METRICS_STAGE_WINDOW_SECONDS), by stage name and final status.",
            labels=["stage", "status"],
        )
        for row in sorted(rows, key=lambda r: (r["name"], r["status"])):
            cumulative = [(_bound(b), float(row[f"le_{i}"])) for i, b in enumerate(STAGE_DURATION_BUCKETS)]
            cumulative.append(("+Inf", float(row["total"])))
            total_seconds = row["seconds"].total_seconds() if row["seconds"] is not None else 0.0
            family.add_metric([row["name"], row["status"]], cumulative, total_seconds)
        yield family

    def approvals(self):
        from apps.deployments.choices import DEPLOYMENT_ACTIVE, WAIT_APPROVAL, StageStatus
        from apps.deployments.models import Stage

        rows = (
            Stage.objects.filter(
                deployment__status__in=DEPLOYMENT_ACTIVE, name=WAIT_APPROVAL, status=StageStatus.RUNNING
            )
            .order_by()
            .values("deployment__project_id")
            .annotate(n=Count("id"), oldest=Min("started_at"))
        )
        waiting = GaugeMetricFamily(
            "pipeportal_approvals_waiting",
            "WAIT_APPROVAL stages running now, by project.",
            labels=["project"],
        )
        oldest = GaugeMetricFamily(
            "pipeportal_approval_oldest_wait_seconds",
            "How long the oldest running WAIT_APPROVAL stage has waited, by project.",
            labels=["project"],
        )
        now = timezone.now()
        for row in sorted(rows, key=lambda r: r["deployment__project_id"]):
            project_id = row["deployment__project_id"]
            waiting.add_metric([project_id], row["n"])
            if row["oldest"] is not None:
                oldest.add_metric([project_id], max(0.0, (now - row["oldest"]).total_seconds()))
        yield waiting
        yield oldest

    def pipeds(self):
        from apps.pipeds.choices import PipedStatus
        from apps.pipeds.models import Piped

        now = timezone.now()
        online_window = settings.PIPEPORTAL_PIPED_ONLINE_SECONDS
        age = GaugeMetricFamily(
            "pipeportal_piped_heartbeat_age_seconds",
            "Seconds since each enabled piped's last heartbeat (pipeds that never reported are left out).",
            labels=["project", "piped"],
        )
        by_status: dict[tuple[str, str], int] = defaultdict(int)
        for piped in (
            Piped.objects.filter(disabled=False)
            .order_by("project_id", "name")
            .values("project_id", "name", "last_heartbeat_at")
        ):
            seen = piped["last_heartbeat_at"]
            status = PipedStatus.OFFLINE
            if seen is not None:
                seconds = max(0.0, (now - seen).total_seconds())
                age.add_metric([piped["project_id"], piped["name"]], seconds)
                if seconds < online_window:
                    status = PipedStatus.ONLINE
            by_status[(piped["project_id"], str(status))] += 1
        pipeds = GaugeMetricFamily(
            "pipeportal_pipeds",
            "Enabled pipeds by project and status (ONLINE, OFFLINE).",
            labels=["project", "status"],
        )
        for labels, value in sorted(by_status.items()):
            pipeds.add_metric(list(labels), value)
        yield age
        yield pipeds


def _bound(seconds: float) -> str:
    return str(float(seconds))


def registry_for_scrape() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_mode():
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(API_LATENCY)
    registry.register(DatabaseCollector())
    return registry


def token_accepted(request: HttpRequest) -> bool:
    expected = settings.PIPEPORTAL_METRICS_TOKEN
    if not expected:
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected.encode())


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not token_accepted(request):
        response = HttpResponse("A bearer token is required (PIPEPORTAL_METRICS_TOKEN).\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        response["Cache-Control"] = "no-store"
        return response
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = HttpResponse(encoder(registry_for_scrape()), content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
