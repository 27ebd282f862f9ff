"""The audit log: an append-only record of who did what to the platform (slate_audit).

Logins, failed logins, logouts, token use and revocation, user, role and team changes,
metamodel changes, pack installs and exports are written here by the code that does them,
in the same transaction, so an event is logged exactly when it happened. Record changes are
in the record history (slate_history, with `changed_by` and `token_id`), not copied here.

Append-only is the database's rule, not only this module's habit: triggers (`protect`,
run by `slatecrm init`) refuse every UPDATE and DELETE of slate_audit (and TRUNCATE on
PostgreSQL), whoever sends them, so a bug or a hand-typed statement cannot rewrite history.
Someone who owns the database can still drop the triggers; that is for the database's own
permissions and backups to guard against (docs/security.md, "Audit log").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from ..storage import system
from .principal import Principal

log_table = system.audit

#: What a refused change of the log says, on both databases.
REFUSAL = "slate_audit is append-only: its events cannot be changed or deleted"


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


def _sqlite_statements() -> list[str]:
    table = log_table.name
    return [f"CREATE TRIGGER IF NOT EXISTS {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"
            for verb in ("UPDATE", "DELETE")]


def _postgresql_statements() -> list[str]:
    table = log_table.name
    function = f"{table}_append_only"
    statements = [
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        # No `%` placeholder: the driver would read it as a parameter.
        f"BEGIN RAISE EXCEPTION USING MESSAGE = '{REFUSAL} (' || TG_OP || ' refused)', "
        "ERRCODE = 'insufficient_privilege'; END $$"]
    for name, when in ((f"{table}_no_change", "BEFORE UPDATE OR DELETE ON {t} FOR EACH ROW"),
                       (f"{table}_no_truncate", "BEFORE TRUNCATE ON {t} FOR EACH STATEMENT")):
        # Dropped and made again in one transaction: idempotent on every supported version.
        statements += [f"DROP TRIGGER IF EXISTS {name} ON {table}",
                       f"CREATE TRIGGER {name} {when.format(t=table)} EXECUTE FUNCTION {function}()"]
    return statements


def protect(conn: sa.Connection) -> None:
    """Make slate_audit append-only in the database (idempotent; run by `slatecrm init`)."""
    if conn.dialect.name == "sqlite":
        statements = _sqlite_statements()
    elif conn.dialect.name == "postgresql":
        statements = _postgresql_statements()
    else:  # pragma: no cover - the two supported databases
        raise NotImplementedError(f"an append-only audit log on {conn.dialect.name}")
    for statement in statements:
        conn.exec_driver_sql(statement)
