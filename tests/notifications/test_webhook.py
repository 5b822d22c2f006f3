"""Webhooks: the documented body, PipeCD's static header, and the HMAC signature checked with the docs' own
ten-line receiver snippet."""

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from apps.applications.services import add_application
from apps.notifications import hooks, webhook
from apps.notifications.builders import deployment_event
from apps.notifications.notifier import notifier_for
from apps.projects.principal import system_principal

from .conftest import webhook_route

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("notifications-live")]

DOCS = Path(__file__).resolve().parent.parent.parent / "docs" / "notifications.md"
SECRET = "a-signing-secret-made-for-this-test"


def docs_section(heading: str) -> str:
    text = DOCS.read_text()
    start = text.index(heading)
    return text[start:]


def verification_snippet():
    """The receiver code of docs/notifications.md, executed as a reader would paste it."""
    code = re.search(r"```python\n(.*?)```", docs_section("### Verifying a delivery"), re.S).group(1)
    assert len(code.strip().splitlines()) <= 10, "the docs promise ten lines"
    namespace: dict = {}
    exec(compile(code, str(DOCS), "exec"), namespace)  # the documentation's own code, as a reader runs it
    return namespace["verify"]


def documented_body() -> dict:
    return json.loads(re.search(r"```json\n(.*?)```", docs_section("### The webhook body"), re.S).group(1))


@pytest.fixture
def deployment(make_runtime, project, piped_and_key):
    """A deployment of `test-app` created through the piped API."""

    def make(runtime):
        app = add_application(
            system_principal(project.id),
            project,
            name="test-app",
            piped_id=piped_and_key[0].id,
            platform_provider="ECS",
            repo_id="manifests",
            path="apps/test-app",
            labels={"app": "test-app", "env": "dev"},
        )
        created, _ = runtime.client.create_deployment(
            application_id=str(app.id),
            trigger_kind="ON_COMMIT",
            trigger_key="ON_COMMIT:1",
            commit={
                "hash": "4f1c2d9" + "0" * 33,
                "message": "Update image to v2\n\nRefs #12",
                "author": "dev",
            },
        )
        return runtime.client.get_deployment(created["id"])

    return make


def test_the_signature_verifies_with_the_documented_snippet_and_a_changed_body_does_not(
    make_runtime, receivers, deployment
):
    hook = receivers()
    runtime = make_runtime(webhook_route(hook.url, secret=SECRET), remote="git@github.com:hoge/manifests.git")
    created = deployment(runtime)
    hooks.deployment_status(runtime, created, "SUCCESS", "The deployment completed successfully")
    notifier_for(runtime).flush()
    [request] = hook.requests
    verify = verification_snippet()
    signature = request.headers["X-PipePortal-Signature"]

    event = verify(SECRET.encode(), request.body, signature)

    assert event["type"] == "DEPLOYMENT_SUCCEEDED"
    assert event["id"] == request.headers["X-PipePortal-Delivery"]
    tampered = request.body.replace(b'"test-app"', b'"evil-app"')
    assert tampered != request.body
    with pytest.raises(ValueError, match="bad signature"):
        verify(SECRET.encode(), tampered, signature)
    with pytest.raises(ValueError, match="bad signature"):
        verify(b"another secret", request.body, signature)


def test_a_body_older_than_five_minutes_is_refused_by_the_snippet(make_runtime, receivers, deployment):
    runtime = make_runtime(webhook_route(receivers().url, secret=SECRET))
    receiver = runtime.config.spec.notifications.receiver("hook").webhook
    created = deployment(runtime)
    event = deployment_event(notifier_for(runtime).source, "DEPLOYMENT_SUCCEEDED", created, status="SUCCESS")
    old = datetime.now(UTC) - timedelta(minutes=6)
    raw, headers = webhook.request_for(receiver, event, now=old)
    verify = verification_snippet()
    with pytest.raises(ValueError, match="too old"):
        verify(SECRET.encode(), raw, headers["X-PipePortal-Signature"])
    fresh, fresh_headers = webhook.request_for(receiver, event)
    assert verify(SECRET.encode(), fresh, fresh_headers["X-PipePortal-Signature"])["id"] == event.id


def test_the_body_has_the_documented_shape(make_runtime, receivers, deployment, project):
    hook = receivers()
    runtime = make_runtime(webhook_route(hook.url, secret=SECRET), remote="git@github.com:hoge/manifests.git")
    created = deployment(runtime)
    hooks.deployment_status(runtime, created, "SUCCESS", "The deployment completed successfully")
    notifier_for(runtime).flush()
    [request] = hook.requests
    body = request.json()
    documented = documented_body()

    assert set(body) == set(documented)
    for key in ("project", "piped", "application", "deployment", "commit"):
        assert set(body[key]) == set(documented[key]), key
    assert set(body["deployment"]["stages"][0] if body["deployment"]["stages"] else {}) <= set(
        documented["deployment"]["stages"][0]
    )
    assert body["version"] == 1
    assert abs(body["timestamp"] - datetime.now(UTC).timestamp()) < 60
    assert body["project"] == {"id": project.id}
    assert body["application"]["labels"] == {"app": "test-app", "env": "dev"}
    assert body["deployment"]["status"] == "SUCCESS"
    assert body["deployment"]["trigger"] == {"kind": "ON_COMMIT", "commander": ""}
    assert body["commit"]["short_hash"] == "4f1c2d9"
    assert body["commit"]["title"] == "Update image to v2"
    assert body["commit"]["url"] == f"https://github.com/hoge/manifests/commit/{'4f1c2d9' + '0' * 33}"
    assert body["portal_url"] == f"https://portal.example.test/deployments/{created['id']}/"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-PipePortal-Event"] == "DEPLOYMENT_SUCCEEDED"


def test_pipecds_static_signature_header_is_sent_as_configured(make_runtime, receivers, deployment, tmp_path):
    default_key, custom_key = receivers(), receivers()
    value_file = tmp_path / "static-value"
    value_file.write_text("static-from-file\n")
    runtime = make_runtime(
        f"""\
        notifications:
          routes:
            - {{name: a, receiver: default-key, events: [DEPLOYMENT_SUCCEEDED]}}
            - {{name: b, receiver: custom-key, events: [DEPLOYMENT_SUCCEEDED]}}
          receivers:
            - name: default-key
              webhook: {{url: {default_key.url}, signatureValue: static-value}}
            - name: custom-key
              webhook: {{url: {custom_key.url}, signatureKey: X-Static, signatureValueFile: {value_file}}}
        """
    )
    hooks.deployment_status(runtime, deployment(runtime), "SUCCESS", "")
    notifier_for(runtime).flush()
    [first] = default_key.requests
    [second] = custom_key.requests
    assert first.headers["PipeCD-Signature"] == "static-value"
    assert "X-PipePortal-Signature" not in first.headers  # no signing secret configured
    assert second.headers["X-Static"] == "static-from-file"
