"""What a plugin's workflow action is (the `slatecrm_workflow_actions` hook)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pluggy


@dataclass(frozen=True)
class WorkflowAction:
    """`run(record=, params=, connection=, idempotency_key=)` does the action and returns
    what the run log should show of it (a JSON-able mapping, or None).

    - `record`: the run's record (its fields' values, with id, owner and version);
    - `params`: the workflow's `params` for this action, as written in the pack;
    - `connection`: the run's database connection, in its transaction: what the action
      writes there commits with the run, exactly once;
    - `idempotency_key`: the same on every attempt of this action of this run: what an
      action with an effect outside the database gives the other side, since such an action
      is at least once (a worker may die after the effect and before recording it).

    Raise `ActionFailed(message, retryable=False)` (slatecrm.platform.workflows.actions) for a
    failure no retry can mend; any other exception is retried with the workflow back-off.
    """

    name: str
    run: Callable[..., Mapping[str, Any] | None]
    description: str = ""


def workflow_actions(manager: pluggy.PluginManager) -> dict[str, WorkflowAction]:
    """Every plugin's workflow actions by name; a name given twice is an error."""
    found: dict[str, WorkflowAction] = {}
    for batch in reversed(manager.hook.slatecrm_workflow_actions()):
        for action in batch:
            if action.name in found:
                raise ValueError(f"two plugins register the workflow action {action.name!r}")
            found[action.name] = action
    return found
