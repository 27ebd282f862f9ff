"""`slatecrm token …`: personal API tokens from the command line, for an operator who sets up
a script's access on the server (the user makes their own on the `/me` page or through
`/api/v1/me/tokens`).

A new token is printed once and never again: only its SHA-256 is stored. These commands act
as the system (whoever runs them holds the database) and are audited as such.
"""

from __future__ import annotations

import datetime as dt
import json

import click
from rich.markup import escape
from rich.table import Table

from .cli import EXIT_INVALID, database_option, engine_for, fail, json_option, main, out
from .cli_users import reported
from .identity import tokens, users
from .identity.principal import SCOPES
from .identity.writes import writing


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _when(moment: dt.datetime | None, empty: str = "") -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else empty


@click.group("token")
def token() -> None:
    """Create, list and revoke personal API tokens (`Authorization: Bearer …`)."""


@token.command("create")
@click.option("--user", "email", required=True, metavar="EMAIL", help="whose token it is")
@click.option("--name", required=True, help="what it is for, unique among the user's live tokens")
@click.option("--scope", "scopes", multiple=True, required=True, type=click.Choice(SCOPES),
              help="read, write or admin; repeat for more than one")
@click.option("--expires", metavar="WHEN",
              help=f"30d, 12h, 8w, a date (2027-01-31) or never; default {tokens.DEFAULT_LIFETIME.days}d")
@database_option
@json_option
def token_create(email: str, name: str, scopes: tuple[str, ...], expires: str | None,
                 database: str | None, as_json: bool) -> None:
    """Make a token for a user and print it once. It acts with the user's roles, narrowed by
    its scopes."""
    now = _now()
    with reported(as_json):
        engine = engine_for(database)
        owner = users.get(engine, email)
        if not owner.active:
            fail(EXIT_INVALID, f"{owner.email} is disabled: enable the user first; nothing was changed",
                 as_json)
        expires_at = tokens.parse_expiry(expires, now)
        with writing(engine) as conn:
            token_id, secret = tokens.create(conn, owner.id, name, scopes, expires_at=expires_at, now=now)
            made = tokens.listed(conn, now, token_id=token_id)[0]
    if as_json:
        out.print_json(json.dumps({"ok": True, "token": made.as_dict(), "secret": secret}))
        return
    out.print(f"Token {token_id} ({escape(made.name)}) for {escape(owner.email or owner.name)}, scopes "
              f"{', '.join(made.scopes)}, expires {_when(made.expires_at, 'never')}:")
    out.print(secret, markup=False)
    out.print("Copy it now: it will not be shown again.")


@token.command("list")
@click.option("--user", "email", metavar="EMAIL", help="only this user's tokens")
@database_option
@json_option
def token_list(email: str | None, database: str | None, as_json: bool) -> None:
    """Tokens, newest first, with their state (active, expired, revoked, or superseded by a
    password change); never their secrets."""
    now = _now()
    with reported(as_json):
        engine = engine_for(database)
        owner = users.get(engine, email).id if email else None
        with engine.connect() as conn:
            found = tokens.listed(conn, now, user_id=owner)
    if as_json:
        out.print_json(json.dumps([t.as_dict() for t in found]))
        return
    table = Table()
    # A narrow terminal folds the names and times, never the id and state.
    table.add_column("id", no_wrap=True)
    for column in ("user", "name", "prefix", "scopes"):
        table.add_column(column, overflow="fold")
    table.add_column("state", no_wrap=True, min_width=10)
    for column in ("created", "expires", "last used"):
        table.add_column(column, overflow="fold")
    for t in found:
        table.add_row(str(t.id), escape(t.user_email or str(t.user_id)), escape(t.name), t.prefix,
                      ",".join(t.scopes), t.state, _when(t.created_at), _when(t.expires_at, "never"),
                      _when(t.last_used_at, "—"))
    out.print(table)


@token.command("revoke")
@click.argument("token_id", type=click.IntRange(min=1), metavar="ID")
@database_option
@json_option
def token_revoke(token_id: int, database: str | None, as_json: bool) -> None:
    """Revoke a token (its id from `token list`): it stops working at once."""
    with reported(as_json), writing(engine_for(database)) as conn:
        done = tokens.revoke(conn, token_id, _now())
    if not done:
        fail(EXIT_INVALID, f"there is no live token {token_id}; nothing was changed", as_json)
    if as_json:
        out.print_json(json.dumps({"ok": True, "revoked": token_id}))
    else:
        out.print(f"Revoked token {token_id}")


main.add_command(token)
