"""Platform providers: the piped's adapters to where applications run. Only ECS so far.

`provider_for(provider_spec, knobs)` builds the adapter for one `platformProviders` entry; each platform
package imports its cloud SDK itself (boto3 lives only in platforms/ecs/).
"""

from __future__ import annotations

from typing import Any

# The provider calls that only read. A stage's metadata noted but not yet sent (StageContext.note_*) goes to
# the control plane before any other call, so that whatever the stage changes in the cloud is preceded by
# the record of what it did before; a method missing here counts as a change (the safe side).
READ_ONLY_CALLS = {
    "ECS": frozenset(
        {
            "find_task_definition",
            "describe_task_definition",
            "describe_service",
            "task_sets",
            "task_set",
            "tasks",
            "target_groups",
            "listeners",
            "rules",
        }
    ),
}


class ProviderError(Exception):
    """A platform call failed; the message names the call and what the platform answered."""


def provider_for(provider_spec: Any, knobs: Any) -> Any:
    if provider_spec.type == "ECS":
        from .ecs.provider import ECSProvider

        return ECSProvider(provider_spec.name, provider_spec.config, knobs)
    raise ProviderError(
        f"Platform provider {provider_spec.name!r} is of type {provider_spec.type}, which is not supported yet."
    )
