"""CI must run against the real servers: MariaDB and Redis, never the laptop fallbacks."""

import os

from django.conf import settings
from django.db import connection

from .components import IN_CI, redis_available, require


def test_it_uses_mysql_in_ci(db):
    if IN_CI:
        assert connection.vendor == "mysql", "CI must run the suite on MariaDB (set DATABASE_URL)"
    assert connection.vendor in ("mysql", "sqlite")
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_it_reaches_redis_when_configured():
    url = os.environ.get("REDIS_URL")
    require(redis_available(url), "Redis (REDIS_URL)")
    from django.core.cache import cache

    assert settings.CACHES["default"]["BACKEND"].endswith("RedisCache")
    cache.set("environment-check", "ok", 5)
    assert cache.get("environment-check") == "ok"
