"""Stages are addressed by their exact id, on MariaDB (case-insensitive collation) as on SQLite."""

import pytest

from apps.core.errors import NotFound
from apps.deployments.choices import StageStatus
from apps.deployments.services import approve_stage, get_stage
from tests.webui.factories import make_deployment


@pytest.mark.parametrize("spelling", ["APPROVE", "approve ", "Approve"])
def test_a_stage_id_spelt_differently_is_not_found(application, editor, spelling):
    deployment = make_deployment(application, running_index=2)
    assert get_stage(deployment, "approve").status == StageStatus.RUNNING
    with pytest.raises(NotFound):
        get_stage(deployment, spelling)
    with pytest.raises(NotFound):
        approve_stage(editor, deployment, spelling)


def test_the_portal_answers_404_to_a_stage_id_in_another_case(application, clients):
    deployment = make_deployment(application, running_index=2)
    response = clients["editor"].post(f"/deployments/{deployment.id}/stages/APPROVE/approve/")
    assert response.status_code == 404
    assert clients["editor"].post(f"/deployments/{deployment.id}/stages/approve/approve/").status_code in (
        200,
        302,
    )
