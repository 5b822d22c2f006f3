"""The console tests use the portal tests' world (two projects, pipeds, apps, deployments, keys)."""

from tests.webui.conftest import _own_cache_namespace, world  # noqa: F401
