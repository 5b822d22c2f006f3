"""/healthz and /readyz answered in-process: no database for liveness, real failures for readiness."""

import pytest
from django.test import Client, override_settings

from tests.components import free_port

# What an ALB health check looks like: the task's private address as Host, no cookie, plain http.
ALB = {"HTTP_HOST": "10.0.12.34:8080", "HTTP_USER_AGENT": "ELB-HealthChecker/2.0"}


def test_it_answers_healthz_without_the_database_or_a_session(db, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = Client().get("/healthz", **ALB)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"
    assert not response.cookies


@override_settings(SECURE_SSL_REDIRECT=True, APPEND_SLASH=True)
def test_it_never_redirects_the_probes(db):
    client = Client()
    for path in ("/healthz", "/healthz/", "/readyz", "/metrics"):
        response = client.get(path, **ALB)
        assert response.status_code == 200, path


def test_it_reports_ready_when_database_and_cache_answer(db):
    response = Client().get("/readyz", **ALB)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "cache": "ok"}}
    assert response["Cache-Control"] == "no-store"
    assert not response.cookies


def test_it_names_the_cache_when_redis_cannot_be_reached(db):
    # A real Redis client pointed at a port where nothing listens: the connection is refused.
    dead = f"redis://127.0.0.1:{free_port()}/0"
    caches = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": dead,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    with override_settings(CACHES=caches):
        response = Client().get("/readyz", **ALB)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["cache"].startswith("fail: ")


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_it_refuses_writes_to_the_probes(db, path):
    response = Client().post(path, **ALB)
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
