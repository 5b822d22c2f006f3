"""Git webhooks: signature check, repository and branch matching, fetch requests for the pipeds."""

import hashlib
import hmac
import json
from urllib.parse import urlencode

import pytest
from django.test import Client

from apps.pipeds.models import Piped
from apps.pipeds.services import set_piped_disabled
from apps.pipeds.webhooks import normalize_remote
from apps.projects.principal import system_principal

pytestmark = pytest.mark.django_db


def push(repo_url: str, branch: str = "main") -> dict:
    return {
        "ref": f"refs/heads/{branch}",
        "after": "f" * 40,
        "repository": {
            "full_name": "org/manifests",
            "clone_url": repo_url,
            "ssh_url": "git@github.com:org/manifests.git",
            "html_url": "https://github.com/org/manifests",
        },
    }


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(
    project_id, body: bytes, signature: str | None, event: str = "push", content_type="application/json"
):
    headers = {"X-GitHub-Event": event}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return Client().post(
        f"/webhooks/git?project={project_id}", data=body, content_type=content_type, headers=headers
    )


@pytest.fixture
def watching(piped, second_piped_and_key):
    """piped-1 watches org/manifests@main over SSH; piped-2 the same repo over HTTPS but branch `release`."""
    Piped.objects.filter(pk=piped.pk).update(
        repositories=[
            {"repo_id": "manifests", "remote": "git@github.com:org/manifests.git", "branch": "main"}
        ]
    )
    second = second_piped_and_key[0]
    Piped.objects.filter(pk=second.pk).update(
        repositories=[{"repo_id": "m", "remote": "https://github.com/Org/Manifests", "branch": "release"}]
    )
    return piped, second


@pytest.mark.parametrize(
    ("remote", "expected"),
    [
        ("git@github.com:org/repo.git", "github.com/org/repo"),
        ("https://github.com/org/repo", "github.com/org/repo"),
        ("https://user:token@GitHub.com/Org/Repo.git/", "github.com/org/repo"),
        ("ssh://git@github.com:22/org/repo.git", "github.com/org/repo"),
        ("git://github.com/org/repo.git", "github.com/org/repo"),
        ("file:///srv/git/app.git", "file:/srv/git/app"),
        ("/srv/git/app.git", "file:/srv/git/app"),
    ],
)
def test_it_normalises_remote_urls(remote, expected):
    assert normalize_remote(remote) == expected


def test_a_signed_push_requests_a_fetch_from_the_matching_piped_only(project, watching):
    piped, second = watching
    body = json.dumps(push("https://github.com/org/manifests.git")).encode()
    response = post(project.id, body, sign(project.git_webhook_secret, body))
    assert response.status_code == 200
    assert response.json()["matched"] == [{"piped_id": str(piped.id), "repo_id": "manifests"}]
    piped.refresh_from_db()
    second.refresh_from_db()
    assert set(piped.fetch_requests) == {"manifests"}
    assert second.fetch_requests == {}


def test_the_branch_decides_which_piped_fetches(project, watching):
    _, second = watching
    body = json.dumps(push("https://github.com/org/manifests.git", branch="release")).encode()
    response = post(project.id, body, sign(project.git_webhook_secret, body))
    assert response.json()["matched"] == [{"piped_id": str(second.id), "repo_id": "m"}]


def test_the_fetch_request_reaches_the_pipeds_command_poll(project, watching, piped_client):
    body = json.dumps(push("https://github.com/org/manifests")).encode()
    post(project.id, body, sign(project.git_webhook_secret, body))
    polled = piped_client.get("/commands").json()
    assert set(polled["fetch_requests"]) == {"manifests"}


def test_a_forged_signature_gets_401_and_changes_nothing(project, watching):
    piped, _ = watching
    body = json.dumps(push("https://github.com/org/manifests")).encode()
    for signature in (None, "", "sha256=" + "0" * 64, sign("not-the-secret", body), "sha1=abc"):
        response = post(project.id, body, signature)
        assert response.status_code == 401, signature
        assert response.json() == {"detail": "Unauthorized"}
    piped.refresh_from_db()
    assert piped.fetch_requests == {}


def test_a_signature_over_another_body_is_refused(project, watching):
    body = json.dumps(push("https://github.com/org/manifests")).encode()
    tampered = body.replace(b"main", b"evil")
    assert post(project.id, tampered, sign(project.git_webhook_secret, body)).status_code == 401


def test_an_unknown_project_looks_like_a_bad_signature(project, watching):
    body = json.dumps(push("https://github.com/org/manifests")).encode()
    response = post("no-such-project", body, sign(project.git_webhook_secret, body))
    assert response.status_code == 401
    assert response.json() == {"detail": "Unauthorized"}


def test_another_projects_secret_does_not_open_this_project(project, other_project, watching):
    body = json.dumps(push("https://github.com/org/manifests")).encode()
    response = post(project.id, body, sign(other_project.git_webhook_secret, body))
    assert response.status_code == 401


def test_ping_and_other_events_are_accepted_without_effect(project, watching):
    piped, _ = watching
    body = b'{"zen": "Keep it logically awesome."}'
    assert (
        post(project.id, body, sign(project.git_webhook_secret, body), event="ping").json()["event"] == "ping"
    )
    other = post(project.id, body, sign(project.git_webhook_secret, body), event="issues")
    assert other.status_code == 202
    piped.refresh_from_db()
    assert piped.fetch_requests == {}


def test_a_tag_push_is_ignored(project, watching):
    payload = push("https://github.com/org/manifests")
    payload["ref"] = "refs/tags/v1"
    body = json.dumps(payload).encode()
    assert post(project.id, body, sign(project.git_webhook_secret, body)).status_code == 202


def test_a_disabled_piped_is_not_asked_to_fetch(project, watching):
    piped, _ = watching
    set_piped_disabled(system_principal(project.id), piped, True)
    body = json.dumps(push("https://github.com/org/manifests")).encode()
    assert post(project.id, body, sign(project.git_webhook_secret, body)).json()["matched"] == []


def test_form_encoded_payloads_work_too(project, watching):
    body = urlencode({"payload": json.dumps(push("https://github.com/org/manifests"))}).encode()
    response = post(
        project.id,
        body,
        sign(project.git_webhook_secret, body),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert len(response.json()["matched"]) == 1


def test_garbage_with_a_valid_signature_is_a_400(project, watching):
    body = b"not json"
    assert post(project.id, body, sign(project.git_webhook_secret, body)).status_code == 400


def test_get_is_not_allowed(project):
    assert Client().get(f"/webhooks/git?project={project.id}").status_code == 405


def test_a_push_larger_than_djangos_form_limit_still_works(project, watching):
    """GitHub sends up to 25 MB; Django's 2.5 MB DATA_UPLOAD_MAX_MEMORY_SIZE must not refuse a big push."""
    payload = push("https://github.com/org/manifests.git")
    payload["commits"] = [{"id": "c" * 40, "message": "x" * 1000} for _ in range(3000)]
    body = json.dumps(payload).encode()
    assert len(body) > 2_621_440
    response = post(project.id, body, sign(project.git_webhook_secret, body))
    assert response.status_code == 200, response.content
    assert response.json()["matched"] == [{"piped_id": str(watching[0].id), "repo_id": "manifests"}]


def test_a_malformed_remote_url_does_not_break_matching():
    assert normalize_remote("https://github.com:notaport/org/repo") == "https://github.com:notaport/org/repo"
