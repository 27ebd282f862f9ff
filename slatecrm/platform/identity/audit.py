"""The audit log: an append-only record of who did what to the platform (slate_audit).

Logins, failed logins, logouts, token use and revocation, user, role and team changes,
metamodel changes, pack installs and exports are written here by the code that does them,
in the same transaction, so an event is logged exactly when it happened. Record changes are
in the record history (slate_history, with `changed_by` and `token_id`), not copied here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from ..storage import system
from .principal import Principal

log_table = system.audit


def record(conn: sa.Connection, action: str, *, principal: Principal | None = None,
           user_id: int | None = None, user_name: str | None = None, address: str | None = None,
           object_kind: str | None = None, object_id: str | int | None = None,
           detail: Mapping[str, Any] | None = None, at: dt.datetime | None = None) -> None:
    """Append one event. `principal` (when given) names who did it; `user_id`/`user_name`
    name them otherwise (a failed login names nobody, or the account tried)."""
    if principal is not None:
        user_id = principal.user_id if user_id is None else user_id
        user_name = principal.name if user_name is None else user_name
    conn.execute(log_table.insert().values(
        at=at or dt.datetime.now(dt.UTC), action=action, user_id=user_id, user_name=user_name,
        token_id=principal.token_id if principal is not None else None, address=address,
        object_kind=object_kind, object_id=None if object_id is None else str(object_id),
        detail=dict(detail or {})))
