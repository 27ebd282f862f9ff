"""`slatecrm user …`: the platform's users and their passwords, from the command line; and the
first administrator that `slatecrm init --admin-email` makes.

A password is read from standard input (`--password-stdin`: its first line, for scripts) or
typed at a hidden prompt, twice; it is never an option (options end up in shell histories
and process lists) and never printed, except a password this command generated itself,
shown once. Refused changes exit with 1 and change nothing; an older database must be
brought up to date by `slatecrm init` first (exit 4 until then).
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import sqlalchemy as sa
from rich.markup import escape
from rich.table import Table

from .cli import EXIT_INVALID, EXIT_USAGE, database_option, engine_for, fail, json_option, main, out
from .cli import reported as cli_reported
from .identity import memberships, userattributes, users
from .identity.errors import IdentityError
from .identity.passwords import Passwords


@contextmanager
def reported(as_json: bool) -> Iterator[None]:
    """The CLI's failures, and a refused user change as exit 1 with its reason."""
    with cli_reported(as_json):
        try:
            yield
        except IdentityError as error:
            fail(EXIT_INVALID, f"{error}; nothing was changed", as_json)


def read_password(from_stdin: bool, as_json: bool) -> str:
    """The first line of standard input, or a hidden prompt with confirmation."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            fail(EXIT_USAGE, "no password on standard input; nothing was changed", as_json)
        return line
    password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    return password


def generated_password(passwords: Passwords) -> str:
    """20 random URL-safe characters (120 bits), one the policy accepts."""
    while True:
        password = secrets.token_urlsafe(15)
        if passwords.policy.problem(password) is None:
            return password


def show(user: users.User, verb: str, as_json: bool, **extra: Any) -> None:
    if as_json:
        out.print_json(json.dumps({"ok": True, "user": user.as_dict(), **extra}))
    else:
        out.print(f"{verb} {escape(user.email or user.name)}")


def checked_attributes(engine: sa.Engine, assignments: tuple[str, ...],
                       unset: tuple[str, ...]) -> dict[str, Any]:
    """`--set NAME=VALUE` and `--unset NAME` as a change, every attribute and value checked
    before anything is changed (InvalidAttribute names each wrong one)."""
    given = userattributes.parse_assignments(assignments)
    changes: dict[str, Any] = {**given, **dict.fromkeys(unset)}
    both = sorted(set(given) & set(unset))
    if both:
        raise userattributes.InvalidAttribute({n: "given to --set and --unset: give one" for n in both})
    with engine.connect() as conn:
        userattributes.checked(userattributes.definitions(conn), changes)
    return changes


def attribute_values(engine: sa.Engine, user: users.User) -> dict[str, Any]:
    """The user's attribute values, as `user list` shows them."""
    with engine.connect() as conn:
        return userattributes.of_user(conn, user.id)


@click.group("user")
def user() -> None:
    """Add, list, disable and enable users; set and reset their passwords; give them roles
    and teams (`slatecrm team` makes teams).

    Users sign in at /login with their e-mail and password (docs/security.md)."""


@user.command("add")
@click.argument("email")
@click.option("--name", required=True, help="the user's name, as pages show it")
@click.option("--time-zone", default="UTC", show_default=True, help="an IANA time zone (Europe/Paris)")
@click.option("--locale", default="en", show_default=True, help="a language tag (en, fr, pt-BR)")
@click.option("--manager", metavar="EMAIL", help="the user's manager")
@click.option("--password-stdin", is_flag=True,
              help="read a password from the first line of standard input (else: no password yet)")
@click.option("--role", "roles", multiple=True, metavar="ROLE",
              help="a role to give (repeatable): administrator or a role a pack or the organisation defines")
@click.option("--team", "teams", multiple=True, metavar="TEAM", help="a team to join (repeatable)")
@click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE",
              help="a user attribute's value (repeatable): kind: user_attribute in a pack defines them")
@database_option
@json_option
def user_add(email: str, name: str, time_zone: str, locale: str, manager: str | None,
             password_stdin: bool, roles: tuple[str, ...], teams: tuple[str, ...],
             assignments: tuple[str, ...], database: str | None, as_json: bool) -> None:
    """Add a user. Without --password-stdin it has no password, so it cannot sign in until
    `user set-password`; without --role it may sign in but reaches nothing."""
    with reported(as_json):
        engine = engine_for(database)
        memberships.check_names(engine, roles, teams)  # a typo is said before the user is made
        attributes = checked_attributes(engine, assignments, ())
        passwords = Passwords.from_environment()
        password = read_password(True, as_json) if password_stdin else None
        held: list[memberships.Memberships] = []
        made = users.add(engine, email, name, time_zone=time_zone, locale=locale, manager=manager,
                         password=password, passwords=passwords, then=users.steps(
                             lambda conn, user_id: held.append(memberships.change_on(
                                 conn, user_id, add_roles=roles, add_teams=teams)),
                             userattributes.setting(attributes, email)))
        values = attribute_values(engine, made)
    show(made, "Added", as_json, **held[0].as_dict(), attributes=values)


@user.command("list")
@database_option
@json_option
def user_list(database: str | None, as_json: bool) -> None:
    """Every user, disabled ones too (users made before e-mails existed have none)."""
    with reported(as_json):
        engine = engine_for(database)
        found = users.list_users(engine)
        held = memberships.all_memberships(engine)
        attributes = userattributes.of_users(engine, [u.id for u in found])
    none = memberships.Memberships((), ())
    if as_json:
        out.print_json(json.dumps([{**u.as_dict(), **held.get(u.id, none).as_dict(),
                                    "attributes": attributes[u.id]} for u in found]))
        return
    table = Table()
    table.add_column("e-mail", overflow="fold")
    table.add_column("name")
    # A narrow terminal folds the other columns, never these words.
    table.add_column("status", no_wrap=True, min_width=8)
    table.add_column("password", no_wrap=True, min_width=8)
    table.add_column("time zone", overflow="fold")
    table.add_column("locale", no_wrap=True)
    table.add_column("manager", overflow="fold")
    table.add_column("roles", overflow="fold")
    table.add_column("teams", overflow="fold")
    shown = any(attributes.values())  # a column only when some user has attributes
    if shown:
        table.add_column("attributes", overflow="fold")
    for u in found:
        mine = held.get(u.id, none)
        values = [escape(", ".join(f"{k}={v}" for k, v in attributes[u.id].items()))] if shown else []
        table.add_row(escape(u.email or "—"), escape(u.name), "active" if u.active else "disabled",
                      "set" if u.has_password else "none", u.time_zone, u.locale,
                      escape(u.manager_email or ""), escape(", ".join(mine.roles)),
                      escape(", ".join(mine.teams)), *values)
    out.print(table)


@user.command("update")
@click.argument("email")
@click.option("--name", help="a new name")
@click.option("--time-zone", help="an IANA time zone (Europe/Paris)")
@click.option("--locale", help="a language tag (en, fr, pt-BR)")
@click.option("--manager", metavar="EMAIL", help="a new manager (refused if it makes a circle)")
@click.option("--no-manager", is_flag=True, help="remove the manager")
@click.option("--add-role", "add_roles", multiple=True, metavar="ROLE", help="give a role (repeatable)")
@click.option("--remove-role", "remove_roles", multiple=True, metavar="ROLE",
              help="take a role away (repeatable)")
@click.option("--add-team", "add_teams", multiple=True, metavar="TEAM", help="join a team (repeatable)")
@click.option("--remove-team", "remove_teams", multiple=True, metavar="TEAM",
              help="leave a team (repeatable)")
@click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE",
              help="set a user attribute (repeatable)")
@click.option("--unset", "unset", multiple=True, metavar="NAME",
              help="remove a user attribute's value (repeatable)")
@database_option
@json_option
def user_update(email: str, name: str | None, time_zone: str | None, locale: str | None,
                manager: str | None, no_manager: bool, add_roles: tuple[str, ...],
                remove_roles: tuple[str, ...], add_teams: tuple[str, ...], remove_teams: tuple[str, ...],
                assignments: tuple[str, ...], unset: tuple[str, ...], database: str | None,
                as_json: bool) -> None:
    """Change a user's name, time zone, locale, manager, roles, teams or attributes."""
    if manager and no_manager:
        fail(EXIT_USAGE, "give --manager or --no-manager, not both", as_json)
    changes: dict[str, Any] = {"name": name, "time_zone": time_zone, "locale": locale}
    if manager or no_manager:
        changes["manager"] = manager
    with reported(as_json):
        engine = engine_for(database)
        users.get(engine, email)
        memberships.check_names(engine, add_roles, [*add_teams, *remove_teams])
        attributes = checked_attributes(engine, assignments, unset)
        held: list[memberships.Memberships] = []
        changed = users.update(engine, email, **changes, then=users.steps(
            lambda conn, user_id: held.append(memberships.change_on(
                conn, user_id, add_roles=add_roles, remove_roles=remove_roles, add_teams=add_teams,
                remove_teams=remove_teams)),
            userattributes.setting(attributes, email)))
        values = attribute_values(engine, changed)
    show(changed, "Updated", as_json, **held[0].as_dict(), attributes=values)


@user.command("disable")
@click.argument("email")
@database_option
@json_option
def user_disable(email: str, database: str | None, as_json: bool) -> None:
    """Disable a user: its records, history and name stay; it will not be able to sign in."""
    with reported(as_json):
        changed = users.disable(engine_for(database), email)
    show(changed, "Disabled", as_json)


@user.command("enable")
@click.argument("email")
@database_option
@json_option
def user_enable(email: str, database: str | None, as_json: bool) -> None:
    """Enable a disabled user again."""
    with reported(as_json):
        changed = users.enable(engine_for(database), email)
    show(changed, "Enabled", as_json)


@user.command("set-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input's first line")
@database_option
@json_option
def user_set_password(email: str, password_stdin: bool, database: str | None, as_json: bool) -> None:
    """Set a user's password (typed twice at a hidden prompt, or from standard input)."""
    with reported(as_json):
        engine = engine_for(database)
        users.get(engine, email)  # an unknown e-mail is said before a password is asked for
        passwords = Passwords.from_environment()
        password = read_password(password_stdin, as_json)
        changed = users.set_password(engine, email, password, passwords=passwords)
    show(changed, "Password set for", as_json)


@user.command("reset")
@click.argument("email")
@database_option
@json_option
def user_reset(email: str, database: str | None, as_json: bool) -> None:
    """Clear a user's password: it cannot sign in until a new one is set, and what it was
    granted before (sessions, when they exist) is revoked."""
    with reported(as_json):
        changed = users.reset(engine_for(database), email)
    show(changed, "Password cleared for", as_json)


# --- init --admin-email ------------------------------------------------------------------------
def first_admin(engine: sa.Engine, email: str, name: str | None, generate: bool,
                as_json: bool) -> dict[str, Any]:
    """Make the first administrator unless one exists; what happened, for init's output.
    The password: generated (and shown once), from standard input when it is not a terminal,
    else typed twice at a hidden prompt."""
    with reported(as_json):
        existing = users.administrators(engine)
        if existing:
            return {"email": existing[0], "created": False}
        passwords = Passwords.from_environment()
        if generate:
            password = generated_password(passwords)
        else:
            password = read_password(not sys.stdin.isatty(), as_json)
        made = users.first_admin(engine, email, name or "Administrator", password, passwords=passwords)
    if made.created is None:  # made by someone else meanwhile
        return {"email": made.existing[0], "created": False}
    # (users.first_admin gave it the built-in administrator role, in the same transaction)
    return {"email": made.created.email, "created": True,
            **({"password": password} if generate else {})}


def print_first_admin(admin: dict[str, Any]) -> None:
    if not admin["created"]:
        out.print(f"An administrator exists already ({escape(admin['email'])}): none was created")
    elif "password" in admin:
        out.print(f"Administrator {escape(admin['email'])} created, with the password (shown this "
                  f"once): {escape(admin['password'])}")
    else:
        out.print(f"Administrator {escape(admin['email'])} created")


main.add_command(user)
