"""Delivery: retries with backoff on 5xx, 429 and network errors (not on 4xx), every attempt recorded, one
event sent once however many processes see it, a full queue and a stopping piped."""

import pytest

from apps.applications.services import add_application
from apps.notifications import hooks
from apps.notifications.models import NotificationAttempt, NotificationEvent
from apps.notifications.notifier import notifier_for
from apps.projects.principal import system_principal
from tests.components import free_port

from .conftest import webhook_route

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("notifications-live")]


@pytest.fixture
def deployment(project, piped_and_key):
    def make(runtime, name: str = "test-app", n: int = 1) -> dict:
        app = add_application(
            system_principal(project.id),
            project,
            name=name,
            piped_id=piped_and_key[0].id,
            platform_provider="ECS",
            repo_id="manifests",
            path=f"apps/{name}",
            labels={"env": "dev"},
        )
        created, _ = runtime.client.create_deployment(
            application_id=str(app.id),
            trigger_kind="ON_COMMIT",
            trigger_key=f"ON_COMMIT:{n}",
            commit={"hash": f"{n:040x}", "message": "Release", "author": "dev"},
        )
        return created

    return make


def attempts_of(deployment_id) -> list[tuple]:
    [event] = NotificationEvent.objects.filter(deployment_id=deployment_id)
    return list(
        NotificationAttempt.objects.filter(event=event)
        .order_by("attempt")
        .values_list("attempt", "outcome", "status_code")
    )


def test_500_twice_then_200_is_delivered_once_on_the_third_try(make_runtime, receivers, deployment):
    hook = receivers([500, 500])
    runtime = make_runtime(webhook_route(hook.url))
    created = deployment(runtime)

    hooks.deployment_status(runtime, created, "SUCCESS", "")
    assert notifier_for(runtime).flush()

    assert len(hook.requests) == 3
    assert len({r.headers["X-PipePortal-Delivery"] for r in hook.requests}) == 1
    assert attempts_of(created["id"]) == [(1, "RETRYING", 500), (2, "RETRYING", 500), (3, "DELIVERED", 200)]
    # Backoff: 0.05 s, then 0.1 s (PIPED_NOTIFY_RETRY_BASE_SECONDS doubled) at least between the tries.
    first, second, third = (r.received_at for r in hook.requests)
    assert second - first >= 0.05
    assert third - second >= 0.1


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
def test_a_4xx_answer_is_final(make_runtime, receivers, deployment, status):
    hook = receivers([status])
    runtime = make_runtime(webhook_route(hook.url))
    created = deployment(runtime)
    hooks.deployment_status(runtime, created, "FAILURE", "Stage ECS_SYNC failed")
    assert notifier_for(runtime).flush()
    assert len(hook.requests) == 1
    assert attempts_of(created["id"]) == [(1, "FAILED", status)]


def test_a_receiver_that_cannot_be_reached_is_retried_then_given_up(make_runtime, deployment):
    runtime = make_runtime(webhook_route(f"http://127.0.0.1:{free_port()}/gone"))
    created = deployment(runtime)
    hooks.deployment_status(runtime, created, "SUCCESS", "")
    assert notifier_for(runtime).flush()
    attempts = attempts_of(created["id"])
    assert [a[:2] for a in attempts] == [(1, "RETRYING"), (2, "RETRYING"), (3, "RETRYING"), (4, "FAILED")]
    last = NotificationAttempt.objects.get(attempt=4)
    assert "gave up after 4 attempts" in last.error
    assert "ConnectionError" in last.error


def test_429_is_retried_after_its_retry_after(make_runtime, receivers, deployment):
    hook = receivers([(429, b"slow down", {"Retry-After": "0"})])
    runtime = make_runtime(webhook_route(hook.url))
    created = deployment(runtime)
    hooks.deployment_status(runtime, created, "SUCCESS", "")
    assert notifier_for(runtime).flush()
    assert attempts_of(created["id"]) == [(1, "RETRYING", 429), (2, "DELIVERED", 200)]


def test_an_event_seen_by_two_piped_processes_is_sent_once(make_runtime, receivers, deployment):
    hook = receivers()
    scheduler_process = make_runtime(webhook_route(hook.url))
    worker_process = make_runtime(webhook_route(hook.url))
    created = deployment(scheduler_process)
    # Both processes saw the deployment succeed (the worker after its step, the scheduler at its tick).
    hooks.deployment_status(worker_process, created, "SUCCESS", "")
    assert notifier_for(worker_process).flush()
    hooks.deployment_status(scheduler_process, created, "SUCCESS", "")
    assert notifier_for(scheduler_process).flush()
    assert len(hook.requests) == 1
    assert NotificationEvent.objects.filter(deployment_id=created["id"]).count() == 1


def test_a_full_queue_drops_the_new_notification_and_records_it(
    make_runtime, receivers, deployment, settings
):
    settings.PIPED_NOTIFY_WORKERS = 1
    settings.PIPED_NOTIFY_QUEUE_SIZE = 2
    hook = receivers(hang=True)
    runtime = make_runtime(webhook_route(hook.url))
    first, second, third = (deployment(runtime, f"app-{n}", n) for n in (1, 2, 3))
    hooks.deployment_status(runtime, first, "SUCCESS", "")
    hook.wait_for(1)  # the only sender thread now waits for the hanging receiver
    hooks.deployment_status(runtime, second, "SUCCESS", "")  # queued
    hooks.deployment_status(runtime, third, "SUCCESS", "")  # no room: dropped
    hook.release.set()
    assert notifier_for(runtime).flush()
    assert attempts_of(third["id"]) == [(1, "DROPPED", None)]
    assert attempts_of(second["id"])[-1][1] == "DELIVERED"


def test_a_stopping_piped_records_what_it_could_not_retry(make_runtime, receivers, deployment, settings):
    settings.PIPED_NOTIFY_RETRY_BASE_SECONDS = 30.0
    settings.PIPED_NOTIFY_RETRY_MAX_SECONDS = 30.0
    settings.PIPED_NOTIFY_SHUTDOWN_SECONDS = 0.5
    hook = receivers([503])
    runtime = make_runtime(webhook_route(hook.url))
    created = deployment(runtime)
    hooks.deployment_status(runtime, created, "SUCCESS", "")
    hook.wait_for(1)
    hooks.piped_stopping(runtime, scheduler=False)  # the retry is 30 s away: the piped does not wait for it
    assert attempts_of(created["id"]) == [(1, "RETRYING", 503), (2, "ABANDONED", None)]
    assert len(hook.requests) == 1


def test_the_receivers_url_never_reaches_the_attempts_nor_the_log(
    make_runtime, receivers, deployment, caplog
):
    # A Slack hook URL or a Zapier catch hook is a secret in its path (and sometimes its query): the
    # errors recorded and logged name the receiver, never its URL.
    secret_path = "/services/T0000/B0000/s3cr3tHookToken"
    gone = f"http://127.0.0.1:{free_port()}{secret_path}?token=q5ecret"
    moved = receivers(default=(301, b"", {"Location": f"https://hooks.example.com{secret_path}"}))
    runtime = make_runtime(
        f"""\
notifications:
  routes:
    - name: everything
      receiver: gone
    - name: everything-too
      receiver: moved
  receivers:
    - name: gone
      webhook:
        url: {gone}
    - name: moved
      webhook:
        url: {moved.url}{secret_path}
"""
    )
    created = deployment(runtime)
    with caplog.at_level("INFO"):
        hooks.deployment_status(runtime, created, "SUCCESS", "")
        assert notifier_for(runtime).flush()
    errors = list(NotificationAttempt.objects.values_list("receiver", "error"))
    assert {receiver for receiver, _ in errors} == {"gone", "moved"}
    assert any("ConnectionError" in error for receiver, error in errors if receiver == "gone")
    assert any("redirect" in error for receiver, error in errors if receiver == "moved")
    for _, error in errors:
        assert "s3cr3tHookToken" not in error and "q5ecret" not in error, error
    assert "s3cr3tHookToken" not in caplog.text and "q5ecret" not in caplog.text
