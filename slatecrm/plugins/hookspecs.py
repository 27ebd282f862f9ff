"""Every plugin hook of SlateCRM, in one file (pluggy). The built-in field types, routes and
templates are plugins on these same hooks (slatecrm/plugins/builtin_*.py).

Each hook here has a section of the same name in docs/plugins.md (a test checks both), with
its arguments, when it is called and an example. A plugin implements any of them with the
`hookimpl` marker and registers under the `slatecrm` entry point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import sqlalchemy as sa
    from starlette.applications import Starlette
    from starlette.routing import BaseRoute

    from slatecrm.metamodel.fieldtypes import FieldType
    from slatecrm.metamodel.rules.functions import RuleFunction
    from slatecrm.platform.files.backends import FileBackend

    from .workflow_actions import WorkflowAction

hookspec = pluggy.HookspecMarker("slatecrm")
hookimpl = pluggy.HookimplMarker("slatecrm")


@hookspec
def slatecrm_field_types() -> Sequence[FieldType]:  # type: ignore[empty-body]
    """Field types this plugin adds. Each name must be new: a name registered twice is an
    error when the plugin manager's registry is built. See FieldType for the contract."""


@hookspec
def slatecrm_rule_functions() -> Sequence[RuleFunction]:  # type: ignore[empty-body]
    """Functions this plugin adds to the rule language (validation rules, formulas, default
    expressions, stage conditions, list filters). Each has a fixed signature, a Python
    implementation and a SQL one; see RuleFunction."""


@hookspec
def slatecrm_before_save(entity: str, action: str, record_id: int | None, values: dict[str, Any],
                         previous: Mapping[str, Any] | None, connection: sa.Connection,
                         user: int | None) -> None:
    """Called for each record about to be created or updated, inside the write's transaction,
    after formulas and before validation. `values` may be changed in place (the result is
    validated like the user's input); raising a RecordError (ValidationFailed for a field)
    refuses the whole write, which rolls back."""


@hookspec
def slatecrm_record_saved(entity: str, record_id: int, action: str, version: int,
                          changes: Mapping[str, Any], user: int | None) -> None:
    """Called once for every record a write created, updated or deleted, after the
    transaction committed, with the changes history recorded ({field: [before, after]},
    JSON values). In process and at most once; an exception is logged, not raised."""


@hookspec
def slatecrm_workflow_actions() -> Sequence[WorkflowAction]:  # type: ignore[empty-body]
    """Workflow actions this plugin adds: a workflow runs one with `kind: plugin` and
    `name: <the action's name>`, in a worker, with the run's record and the action's `params`.
    Each name must be new. See WorkflowAction (slatecrm/plugins/workflow_actions.py)."""


@hookspec
def slatecrm_routes() -> Sequence[BaseRoute]:  # type: ignore[empty-body]
    """Starlette routes this plugin adds to the app. Routes of plugins registered later come
    first, so a plugin's route can take a path a built-in route would match."""


@hookspec
def slatecrm_template_dirs() -> Sequence[str | Path]:  # type: ignore[empty-body]
    """Folders of Jinja2 templates, searched by name before the built-in templates: a plugin
    can add page templates for its routes, override a page (`record-<entity>.html`) and
    ship the widget templates of its field types."""


@hookspec
def slatecrm_startup(app: Starlette) -> None:
    """Called once when the app starts serving (the ASGI lifespan startup), with the app:
    for checks of a plugin's configuration and for warming what it needs. An exception
    stops the start-up."""


@hookspec(firstresult=True)
def slatecrm_file_storage(url: str) -> FileBackend | None:
    """Called once when a process builds its records service, with the value of
    `SLATECRM_FILE_STORAGE` when it is a URL that is not a folder (`s3://bucket/prefix`):
    answer a backend with put / open / delete / exists by key (FileBackend, in
    slatecrm/platform/files/backends.py) for a scheme this plugin stores files at, or None.
    The first answer is used; no answer stops the start-up, naming the setting."""
