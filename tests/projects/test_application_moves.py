"""An application cannot be moved to a disabled piped, just as it cannot be added to one."""

import pytest

from apps.applications.models import Application
from apps.applications.services import update_application
from apps.core.errors import InvalidInput
from apps.pipeds.services import register_piped, set_piped_disabled
from apps.projects.principal import system_principal


def test_it_refuses_to_move_an_application_to_a_disabled_piped(project, application, admin):
    other, _ = register_piped(system_principal(project.id), project, name="piped-off")
    set_piped_disabled(system_principal(project.id), other, True)
    with pytest.raises(InvalidInput, match="disabled"):
        update_application(admin, application, piped_id=other.id)
    assert Application.objects.get(pk=application.pk).piped_id == application.piped_id
