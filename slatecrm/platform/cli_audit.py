"""`slatecrm audit`: the audit log from the command line, newest first, with the filters of
the admin API (identity/auditlog.py), and with `--records` the record history merged in.

Reading needs no right here: whoever can run a command on the server holds the database.
Bad filters exit with 2 (usage) and name the option.
"""

from __future__ import annotations

import json

import click
import sqlalchemy as sa
from rich.markup import escape
from rich.table import Table

from .cli import EXIT_USAGE, database_option, engine_for, fail, json_option, main, out, reported
from .identity import auditlog
from .storage.revisions import NotInitialised
from .storage.system import audit as audit_table


def _detail(event: auditlog.Event) -> str:
    """The detail as short text: `key=value` pairs, lists joined."""
    parts = []
    for key, value in event.detail.items():
        shown = ", ".join(str(v) for v in value) if isinstance(value, list) else json.dumps(value) \
            if isinstance(value, dict) else str(value)
        parts.append(f"{key}={shown}")
    return "; ".join(parts)


@main.command("audit")
@database_option
@click.option("--user", metavar="EMAIL|ID", help="events of this user")
@click.option("--action", metavar="PREFIX",
              help="actions starting with this (login, pack., metamodel.change)")
@click.option("--object", "object_", metavar="KIND[/ID]",
              help="what it was done to (pack/<name>, entity/<name>, record/<entity>/<id>)")
@click.option("--since", metavar="WHEN", help="from this date or ISO time (UTC unless it says)")
@click.option("--until", metavar="WHEN", help="up to this date (the whole day) or ISO time")
@click.option("--limit", default=str(auditlog.DEFAULT_LIMIT), show_default=True, metavar="N",
              help=f"at most this many events (up to {auditlog.LIMIT_MAX})")
@click.option("--records", is_flag=True,
              help="merge in record changes (record.create/update/delete: entity/id, the fields changed, "
                   "who, the token)")
@json_option
def audit_command(database: str | None, user: str | None, action: str | None, object_: str | None,
                  since: str | None, until: str | None, limit: str, records: bool, as_json: bool) -> None:
    """The audit log, newest first: logins, token use, user, role and metamodel changes, pack
    installs, exports; with --records, record changes too."""
    given = [("user", user), ("action", action), ("object", object_), ("since", since),
             ("until", until), ("limit", limit)]
    try:
        query = auditlog.parse([(k, v) for k, v in given if v is not None])
    except auditlog.InvalidFilter as error:
        fail(EXIT_USAGE, "; ".join(f"--{k}: {' '.join(v)}" for k, v in error.errors.items()), as_json)
    with reported(as_json), engine_for(database).connect() as conn:
        if not sa.inspect(conn).has_table(audit_table.name):
            raise NotInitialised("this database has no audit log yet: run `slatecrm init`")
        try:
            found = auditlog.timeline(conn, query) if records else auditlog.events(conn, query).events
        except auditlog.InvalidFilter as error:
            fail(EXIT_USAGE, "; ".join(f"--{k}: {' '.join(v)}" for k, v in error.errors.items()), as_json)
    if as_json:
        out.print_json(json.dumps([e.as_json() for e in found]))
        return
    if not found:
        out.print("No events match.")
        return
    table = Table("when (UTC)", "who", "action", "object", "detail")
    for e in found:
        who = e.user_name or (str(e.user_id) if e.user_id is not None else "")
        if e.token_id is not None:
            who += f" via token {e.token_name or e.token_id}"
        if e.address:
            who += f" from {e.address}"
        target = f"{e.object_kind}/{e.object_id}" if e.object_id else (e.object_kind or "")
        table.add_row(e.at.strftime("%Y-%m-%d %H:%M:%S"), escape(who), escape(e.action), escape(target),
                      escape(_detail(e)))
    out.print(table)
