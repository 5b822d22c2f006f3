"""The console tests use the portal tests' world (two projects, pipeds, apps, deployments, keys)."""

from tests.webui.conftest import _empty_cache, world  # noqa: F401
