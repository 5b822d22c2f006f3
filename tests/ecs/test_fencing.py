"""A step that may no longer hold its stage changes nothing more in AWS: not after a cancel it learnt of from
its claim's renewal, and not once it could not renew its claim before the lease ran out (cut off from the
control plane while it still reaches AWS: another worker may run the stage by then)."""

import threading
import time

import pytest

from apps.deployments.models import Deployment, Stage
from apps.pipedagent import worker
from apps.pipedagent.client import ApiError
from apps.pipedagent.executors import SUCCESS, Done, StageExecutor, register
from tests.pipedagent.conftest import app_files, new_deployment, plan

from .conftest import weights

pytestmark = pytest.mark.django_db(transaction=True)

# What the test stage does, set by each test: `step(ctx)` before it moves the listener's weights to 50/50.
SCRIPT: dict = {}


@register
class MovesTheWeights(StageExecutor):
    """A stage (for these tests only) that, after `SCRIPT["before"](ctx)`, sets the weights to 50/50."""

    name = "TEST_MOVES_THE_WEIGHTS"

    def execute(self, ctx):
        SCRIPT["before"](ctx)
        values = SCRIPT["values"]
        forward = {
            "Type": "forward",
            "ForwardConfig": {
                "TargetGroups": [
                    {"TargetGroupArn": values["PRIMARY_TARGET_GROUP_ARN"], "Weight": 50},
                    {"TargetGroupArn": values["CANARY_TARGET_GROUP_ARN"], "Weight": 50},
                ]
            },
        }
        ctx.platform_provider().set_listener_default_actions(values["LISTENER_ARN"], [forward])
        SCRIPT["changed"] = True
        return Done(SUCCESS, "moved the weights")


@pytest.fixture
def running(make_agent, piped_client, application, manifests, aws, ecs_values):
    """A planned deployment whose stage-0 is the test stage; answers (agent, deployment id)."""

    def make(**knobs):
        SCRIPT.clear()
        SCRIPT["values"] = ecs_values
        manifests.write(app_files(ecs_values), under="apps/hello")
        commit = manifests.commit_and_push("Add hello")
        agent = make_agent(**knobs)
        deployment = new_deployment(piped_client, application.id, commit=commit)
        plan(
            piped_client,
            deployment["id"],
            [
                {"id": "stage-0", "name": "TEST_MOVES_THE_WEIGHTS", "index": 0},
                {"id": "rollback", "name": "ROLLBACK", "index": 1, "visible": False, "rollback": True},
            ],
        )
        return agent, deployment["id"]

    yield make
    SCRIPT.clear()


def test_a_step_cut_off_from_the_control_plane_stops_before_its_lease_can_run_out(running, aws, ecs_values):
    agent, deployment_id = running(claim_lease=1.0)

    def unreachable(*args, **kwargs):
        raise ApiError(0, "the control plane did not answer")

    agent.client.renew_stage_claim = unreachable
    # The AWS call before the change takes longer than the lease (a slow API, a long wait on a lock…).
    SCRIPT["before"] = lambda ctx: time.sleep(1.2)
    worker.run_stage(agent.runtime, deployment_id, "stage-0")

    assert "changed" not in SCRIPT
    assert weights(aws, ecs_values) == (100, 0)
    # Nothing was reported as the stage's outcome: it runs again (elsewhere) from what is recorded.
    row = Stage.objects.get(deployment_id=deployment_id, stage_id="stage-0")
    assert (row.status, row.claimed_by) == ("RUNNING", "")


def test_a_step_whose_stage_was_cancelled_changes_nothing_more(running, aws, ecs_values, editor):
    from apps.deployments.services import cancel_deployment

    agent, deployment_id = running(claim_lease=1.5)

    def cancelled_meanwhile(ctx):
        cancel_deployment(editor, Deployment.objects.get(pk=deployment_id))
        agent.poll_commands()
        assert Deployment.objects.get(pk=deployment_id).status == "ROLLING_BACK"
        # The claim's renewal tells the step (at most a third of the lease later).
        seen = threading.Event()
        for _ in range(60):
            if ctx.stop.is_set():
                seen.set()
                break
            time.sleep(0.05)
        assert seen.is_set(), "the renewal did not see the cancel"

    SCRIPT["before"] = cancelled_meanwhile
    worker.run_stage(agent.runtime, deployment_id, "stage-0")

    assert "changed" not in SCRIPT
    assert weights(aws, ecs_values) == (100, 0)
    row = Stage.objects.get(deployment_id=deployment_id, stage_id="stage-0")
    assert (row.status, row.claimed_by) == ("CANCELLED", "")
    # Its step over, the stage's worker sends the rollback on its way.
    assert ("run", deployment_id, "rollback") in agent.dispatched
