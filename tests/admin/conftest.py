"""The console tests use the portal tests' world (two projects, pipeds, apps, deployments, keys)."""

from tests.webui.conftest import world  # noqa: F401
