"""`slatecrm team …`: the teams a role's `scope: team` reaches (a user's team mates' records).

A user joins or leaves a team with `slatecrm user update EMAIL --add-team T --remove-team T`.
"""

from __future__ import annotations

import json

import click
from rich.markup import escape
from rich.table import Table

from .cli import database_option, engine_for, json_option, main, out
from .cli_users import reported
from .identity import memberships


@click.group("team")
def team() -> None:
    """Add, list, rename and remove teams; show a team's members."""


def _show(made: memberships.Team, verb: str, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps({"ok": True, "team": made.as_dict()}))
    else:
        out.print(f"{verb} team {escape(made.name)}")


@team.command("add")
@click.argument("name")
@click.option("--description", default="", help="what the team is for")
@database_option
@json_option
def team_add(name: str, description: str, database: str | None, as_json: bool) -> None:
    """Add a team (names are unique)."""
    with reported(as_json):
        made = memberships.add_team(engine_for(database), name, description)
    _show(made, "Added", as_json)


@team.command("update")
@click.argument("name")
@click.option("--name", "new_name", default=None, help="the team's new name")
@click.option("--description", default=None, help="what the team is for")
@database_option
@json_option
def team_update(name: str, new_name: str | None, description: str | None, database: str | None,
                as_json: bool) -> None:
    """Rename a team or change its description (members: `slatecrm user update --add-team`)."""
    with reported(as_json):
        changed = memberships.update_team(engine_for(database), name, new_name=new_name,
                                          description=description)
    _show(changed, "Updated", as_json)


@team.command("list")
@database_option
@json_option
def team_list(database: str | None, as_json: bool) -> None:
    """Every team, with how many members it has."""
    with reported(as_json):
        found = memberships.list_teams(engine_for(database))
    if as_json:
        out.print_json(json.dumps([t.as_dict() for t in found]))
        return
    table = Table()
    table.add_column("team", overflow="fold")
    table.add_column("members", justify="right")
    table.add_column("description", overflow="fold")
    for t in found:
        table.add_row(escape(t.name), str(len(t.members)), escape(t.description))
    out.print(table)


@team.command("remove")
@click.argument("name")
@database_option
@json_option
def team_remove(name: str, database: str | None, as_json: bool) -> None:
    """Remove a team; its members stay users, outside it."""
    with reported(as_json):
        removed = memberships.remove_team(engine_for(database), name)
    _show(removed, "Removed", as_json)


@team.command("members")
@click.argument("name")
@database_option
@json_option
def team_members(name: str, database: str | None, as_json: bool) -> None:
    """The e-mails of a team's members."""
    with reported(as_json):
        found = memberships.team(engine_for(database), name)
    if as_json:
        out.print_json(json.dumps(found.as_dict()))
        return
    for email in found.members:
        out.print(escape(email))
    if not found.members:
        out.print(f"team {escape(found.name)} has no members")


main.add_command(team)
