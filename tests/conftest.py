"""Fixtures shared by every test: projects, the four personas, logged-in clients, pipeds, moto."""

import copy
import os
import uuid

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import Client, RequestFactory
from django.utils.module_loading import import_string

from apps.accounts.services import start_portal_session
from apps.applications.services import add_application
from apps.pipeds.services import register_piped
from apps.projects.choices import ActorKind, Role
from apps.projects.principal import Principal, system_principal
from apps.projects.services import create_project

from .components import MotoServer, require

# AWS clients in tests never reach a real account: dummy credentials, the emulator's endpoint.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(autouse=True)
def _own_cache_namespace(settings):
    """Login throttles and cached sessions live in the cache (Redis in CI). Each test gets its own key
    prefix instead of a flushed cache: parallel workers share one Redis database, and a FLUSHDB in one
    would wipe another's counters mid-test."""
    caches = copy.deepcopy(settings.CACHES)
    prefix = f"{caches['default'].get('KEY_PREFIX', '')}-test-{uuid.uuid4().hex[:12]}"
    caches["default"]["KEY_PREFIX"] = prefix
    settings.CACHES = caches
    yield
    client_of = getattr(getattr(cache, "_cache", None), "get_client", None)
    if client_of is not None:  # Redis: drop this test's keys only
        client = client_of(None, write=True)
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
    else:
        cache.clear()


@pytest.fixture
def project(db):
    project, _, _ = create_project(system_principal(), "demo", description="Demo project")
    return project


@pytest.fixture
def project_credentials(db):
    """A project with its static admin's username and password."""
    return create_project(system_principal(), "creds")


@pytest.fixture
def other_project(db):
    project, _, _ = create_project(system_principal(), "other")
    return project


def persona(project_id: str, name: str, role: str, kind: str = ActorKind.USER) -> Principal:
    return Principal(project_id=project_id, kind=kind, name=name, role=role)


@pytest.fixture
def admin(project):
    return persona(project.id, "alice", Role.ADMIN)


@pytest.fixture
def editor(project):
    return persona(project.id, "erin", Role.EDITOR)


@pytest.fixture
def viewer(project):
    return persona(project.id, "victor", Role.VIEWER)


@pytest.fixture
def outsider(other_project):
    """An Admin of another project: everything of `project` must answer 404 to them."""
    return persona(other_project.id, "oscar", Role.ADMIN)


def login_client(client: Client, project, principal: Principal) -> Client:
    """Start a real portal session (the same service SSO uses) and hand its cookie to the test client."""
    request = RequestFactory().get("/")
    request.session = import_string(f"{settings.SESSION_ENGINE}.SessionStore")()
    start_portal_session(
        request,
        project,
        username=principal.name,
        role=principal.role,
        groups=list(principal.groups),
        method="test",
    )
    client.cookies[settings.SESSION_COOKIE_NAME] = request.session.session_key
    return client


@pytest.fixture
def clients(project, other_project, admin, editor, viewer, outsider):
    """Logged-in test clients by persona name, plus an anonymous one."""
    return {
        "admin": login_client(Client(), project, admin),
        "editor": login_client(Client(), project, editor),
        "viewer": login_client(Client(), project, viewer),
        "outsider": login_client(Client(), other_project, outsider),
        "anonymous": Client(),
    }


@pytest.fixture
def piped_and_key(project):
    return register_piped(system_principal(project.id), project, name="piped-1")


@pytest.fixture
def piped(piped_and_key):
    return piped_and_key[0]


@pytest.fixture
def application(project, piped):
    return add_application(
        system_principal(project.id),
        project,
        name="hello",
        piped_id=piped.id,
        platform_provider="ECS",
        repo_id="manifests",
        path="apps/hello",
        labels={"env": "dev", "app": "hello"},
    )


@pytest.fixture(scope="session")
def moto_server():
    try:
        server = MotoServer()
    except (OSError, RuntimeError, TimeoutError) as exc:  # pragma: no cover - depends on the machine
        require(False, f"moto server ({exc})")
    yield server
    server.stop()


@pytest.fixture
def aws(moto_server, monkeypatch):
    """An empty AWS emulator for this test; AWS_ENDPOINT_URL points every boto3 client at it."""
    moto_server.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    return moto_server
