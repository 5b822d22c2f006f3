"""End to end: `manage.py piped` as a separate process says PIPED_STARTED when it starts and PIPED_STOPPED
when it stops cleanly (SIGTERM), and its attempts reach the control plane before it exits."""

import base64
import os
import signal
import textwrap

import pytest

from apps.notifications.models import NotificationAttempt, NotificationEvent
from tests.components import TEST_OUTPUT
from tests.e2e.conftest import PipedProcess, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("piped-e2e")]
SECRET = "process-signing-secret-for-this-test"


@pytest.fixture
def piped_process(request, project, piped_and_key, control_plane, manifests, tmp_path, receivers):
    piped, key = piped_and_key
    hook = receivers()
    config = tmp_path / "piped-config.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            apiVersion: pipecd.dev/v1beta1
            kind: Piped
            spec:
              projectID: {project.id}
              pipedID: {piped.id}
              pipedKeyData: {base64.b64encode(key.encode()).decode()}
              apiAddress: {control_plane.url}
              name: process-piped
              repositories:
                - repoId: manifests
                  remote: {manifests.remote}
                  branch: main
              platformProviders:
                - name: ECS
                  type: ECS
                  config:
                    region: us-east-1
              notifications:
                routes:
                  - name: lifecycle
                    groups: [PIPED]
                    receiver: ops
                receivers:
                  - name: ops
                    webhook:
                      url: {hook.url}/piped
                      signingSecret: {SECRET}
            """
        )
    )
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PIPED_", "SECRET_KEY", "PIPEPORTAL_KEY"))
    }
    env.pop("DEBUG", None)
    env.update(
        {
            "DATABASE_URL": "mysql://nobody:nothing@127.0.0.1:9/nowhere",
            "PIPED_WORK_DIR": str(tmp_path / "piped-work"),
            "PIPED_HEARTBEAT_SECONDS": "1",
            "PIPED_NOTIFY_FLUSH_SECONDS": "0.2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    log = TEST_OUTPUT / "piped" / f"{request.node.name}.log"
    process = PipedProcess(config, env, log)
    yield process, hook
    process.stop()


def test_the_piped_process_says_it_started_and_that_it_stopped(piped_process, piped):
    process, hook = piped_process
    process.start()
    started = wait_for(lambda: hook.of_type("PIPED_STARTED"), 60, message="no PIPED_STARTED")[0]
    assert started.json()["piped"]["name"] == "process-piped"
    wait_for(lambda: NotificationAttempt.objects.filter(event__type="PIPED_STARTED").exists(), 20)
    # SIGUSR1 prints where every thread is (for a piped that seems stuck) and changes nothing else.
    process.proc.send_signal(signal.SIGUSR1)
    wait_for(lambda: "Current thread" in process.log(), 10, message="no stack dump after SIGUSR1")
    assert 'File "' in process.log() and process.proc.poll() is None

    assert process.stop() == 0, process.log()

    [stopped] = hook.of_type("PIPED_STOPPED")
    assert stopped.json()["piped"]["id"] == str(piped.id)
    # Recorded before the process exited (the shutdown flushes the records).
    event = NotificationEvent.objects.get(type="PIPED_STOPPED", piped=piped)
    assert list(NotificationAttempt.objects.filter(event=event).values_list("outcome", flat=True)) == [
        "DELIVERED"
    ]
