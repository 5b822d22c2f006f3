"""Liveness (/healthz) and readiness (/readyz) answers for load balancers and orchestrators."""

import logging
import secrets

from django.core.cache import cache
from django.db import DatabaseError, connections
from django.http import HttpRequest, JsonResponse

logger = logging.getLogger(__name__)


def no_store(response):
    response["Cache-Control"] = "no-store"
    return response


def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and answers HTTP. Touches neither the database nor the cache."""
    return no_store(JsonResponse({"status": "ok"}))


def check_database() -> None:
    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        # Drop the broken connection now so that the next check (or request) opens a fresh one.
        connection.close()
        raise


def check_cache() -> None:
    key = f"ops:readyz:{secrets.token_hex(8)}"
    cache.set(key, "1", timeout=10)
    if cache.get(key) != "1":
        raise RuntimeError("the cache did not return what was just stored")
    cache.delete(key)


CHECKS = {"database": check_database, "cache": check_cache}


def readyz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the cache answer; 503 naming the ones that did not."""
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as exc:  # any failure means "not ready"; the log line has the details
            logger.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
            results[name] = f"fail: {type(exc).__name__}"
        else:
            results[name] = "ok"
    ready = all(value == "ok" for value in results.values())
    return no_store(
        JsonResponse(
            {"status": "ok" if ready else "unavailable", "checks": results}, status=200 if ready else 503
        )
    )
