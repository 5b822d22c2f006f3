"""First middleware of the stack: answers /healthz, /readyz and /metrics, and times /api/ requests.

The probes are answered here, before any other middleware, because the callers are machines: an ALB
health check or a Prometheus scrape addresses the task by its private IP, which is not in ALLOWED_HOSTS,
sends no cookie or CSRF token, and must never be redirected to a login page, to https or to a slash URL,
nor open a session or be cached.
"""

import time

from django.http import HttpRequest, HttpResponse

from .health import healthz, readyz
from .metrics import metrics_view, observe_api_request

PROBES = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics_view}
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class OpsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info.rstrip("/") or "/")
        if probe is not None:
            if request.method not in ("GET", "HEAD"):
                response = HttpResponse(status=405)
                response["Allow"] = "GET, HEAD"
                return response
            return probe(request)
        if not request.path_info.startswith("/api/"):
            return self.get_response(request)
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        # Label by route name, never by raw path: unknown paths must not add series.
        route = (match.view_name or match.route) if match is not None else "unmatched"
        method = request.method if request.method in METHODS else "other"
        observe_api_request(route, method, response.status_code, time.perf_counter() - started)
        return response
