"""Record events: where the write path hands each change to the plugins.

Two points, the ones the write pipeline names (docs/architecture.md, "Two choke points"):

- `before_save`, inside the write's transaction, after formulas and before validation:
  a plugin may change the values about to be written (they are then validated like the
  user's) or refuse the write by raising a RecordError (ValidationFailed for a field).
- `after_commit`, once the transaction has committed, one `slatecrm_record_saved` call per
  record the write created, updated or deleted (cascades and `set_null` included): the same entries
  the history table received. In process and at most once: a crash between the commit
  and the call loses the event (the workflow outbox is the durable path). A plugin that
  raises here is logged and the others still run; the change stays committed and the
  request succeeds, since its answer is already true.

The write pipeline calls these two methods (`register` puts them on its hooks) and nothing
else of pluggy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy
import sqlalchemy as sa

if TYPE_CHECKING:
    from slatecrm.metamodel.rules import RuleContext

    from .pipeline import Draft, Hooks, Saved, WriteRequest

log = logging.getLogger(__name__)


class RecordEvents:
    """The plugins' record hooks, or nothing when the service was built without plugins."""

    def __init__(self, manager: pluggy.PluginManager | None = None) -> None:
        self.manager = manager

    def before_save(self, conn: sa.Connection, entity: str, action: str, record_id: int | None,
                    values: dict[str, Any], previous: Mapping[str, Any] | None, user: int | None) -> None:
        if self.manager is not None:
            self.manager.hook.slatecrm_before_save(
                entity=entity, action=action, record_id=record_id, values=values, previous=previous,
                connection=conn, user=user)

    def after_commit(self, history: Iterable[Mapping[str, Any]]) -> None:
        """`history`: the rows the committed transaction wrote to the history table."""
        if self.manager is None:
            return
        # Each plugin called on its own (not through the hook caller, which stops at the
        # first exception), in pluggy's order: the last registered first.
        implementations = list(reversed(self.manager.hook.slatecrm_record_saved.get_hookimpls()))
        for row in history:
            arguments = {"entity": row["entity"], "record_id": row["record_id"], "action": row["action"],
                         "version": row["version"], "changes": row["changes"], "user": row["changed_by"]}
            for implementation in implementations:
                try:
                    implementation.function(*(arguments[name] for name in implementation.argnames))
                except Exception:
                    log.exception("plugin %s failed after %s of %s %s (the change is committed)",
                                  implementation.plugin_name, row["action"], row["entity"], row["record_id"])

    # --- the write pipeline's hooks (records/pipeline.py) --------------------------------------
    def register(self, hooks: Hooks) -> None:
        """Hand the plugins' record hooks to the write pipeline's extension points."""
        if self.manager is not None:
            hooks.before_save.append(self._before_save)
            hooks.after_commit.append(self._after_commit)

    def _before_save(self, conn: sa.Connection, request: WriteRequest, draft: Draft,
                     context: RuleContext) -> None:
        # A check (validate-on-change) must meet what the save would meet: the plugin sees
        # the save's action; the check's transaction is rolled back afterwards.
        action = request.action if request.action != "check" else ("create" if draft.is_new else "update")
        self.before_save(conn, draft.entity.name, action, draft.record_id, draft.values, draft.before,
                         request.user)

    def _after_commit(self, saved: Saved) -> None:
        self.after_commit(saved.history)
