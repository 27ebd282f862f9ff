"""`slatecrm pack upgrade PATH`: a newer version of an installed pack, merged three ways
with the installed version and the organisation's customisations (packupgrade.py).

Everything is shown before anything is applied: the new version's changes, the
customisations kept, the conflicts (each with the installed, new and organisation's values,
and how to resolve it), then the plan. A conflict left refuses the upgrade (exit 3, like a
plan that puts data at risk); `--resolve PATH=new|mine` resolves one.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click
from rich.markup import escape

from . import installer, packupgrade
from .cli import (
    EXIT_REFUSED,
    EXIT_USAGE,
    author,
    database_option,
    engine_for,
    fail,
    field_types,
    json_option,
    out,
    pack,
    print_plan,
    print_registered,
    reconcile_workflows,
    reported,
    rule_functions,
)
from .threeway import Leaf


def _value(value: Any) -> str:
    return "(none)" if value is None else repr(value)


def _print_leaf(leaf: Leaf, mark: str, note: str = "") -> None:
    out.print(f"  {mark} {escape(leaf.path)} [dim]({escape(leaf.document_name)})[/dim]{escape(note)}")
    out.print(f"      installed: {escape(_value(leaf.base))}   new: {escape(_value(leaf.new))}   "
              f"organisation: {escape(_value(leaf.mine))}")


def print_upgrade(upgrade: packupgrade.Upgrade) -> None:
    out.print(f"[bold]upgrade {upgrade.pack.name} {upgrade.before} → {upgrade.pack.version}[/bold] "
              "(three-way merge: installed version, new version, the organisation's customisations)")
    out.print(f"Changes from the new version ({len(upgrade.changes)}):")
    for line in upgrade.changes:
        out.print(f"  + {escape(line)}")
    out.print(f"Customisations kept ({len(upgrade.kept)}):")
    for leaf in upgrade.kept:
        value = f"{_value(leaf.mine)} → {_value(leaf.new)}" if leaf.adopts else _value(leaf.mine)
        out.print(f"  = {escape(leaf.path)} [dim]({escape(leaf.document_name)})[/dim]: "
                  f"{escape(value)} — {escape(leaf.reason)}")
    for leaf, how in upgrade.resolved:
        _print_leaf(leaf, "[green]✓[/green]", f": resolved {how}")
    if upgrade.conflicts:
        out.print(f"[red]Conflicts ({len(upgrade.conflicts)})[/red]: resolve each with "
                  "--resolve PATH=new (take the new version's) or PATH=mine (keep the organisation's)")
        for leaf in upgrade.conflicts:
            _print_leaf(leaf, "[red]✗[/red]", f": {leaf.reason}")
            out.print(f"      resolve: {' or '.join(f'--resolve {leaf.path}={c}' for c in leaf.choices)}")
    if upgrade.plan is not None:
        print_plan(upgrade.plan, upgrade.source)
    else:
        out.print("The plan is made once no conflict is left.")


@pack.command("upgrade")
@click.argument("path")
@click.option("--resolve", "resolutions", multiple=True, metavar="PATH=new|mine",
              help="resolve a conflict: take the new version's value, or keep the organisation's")
@database_option
@click.option("--yes", is_flag=True, help="apply without asking")
@json_option
def pack_upgrade(path: str, resolutions: Sequence[str], database: str | None, yes: bool,
                 as_json: bool) -> None:
    """Upgrade an installed pack to the version at PATH, keeping the organisation's
    customisations: show the merge and the plan, then apply them in one transaction."""
    registry = field_types()
    try:
        wanted = packupgrade.parse_resolutions(list(resolutions))
    except ValueError as error:
        fail(EXIT_USAGE, str(error), as_json)
    with reported(as_json):
        engine = engine_for(database)
        [new] = installer.load_packs([path], registry)
        upgrade = packupgrade.plan_upgrade(engine, new, registry, wanted, functions=rule_functions())
    if not as_json:
        print_upgrade(upgrade)
    if upgrade.conflicts:
        fail(EXIT_REFUSED, f"{len(upgrade.conflicts)} conflict(s) between the new version and the "
                           "organisation's customisations (see above); nothing was changed", as_json,
             **upgrade.as_dict())
    if upgrade.refused:
        fail(EXIT_REFUSED, "the plan puts data at risk (see above); nothing was changed", as_json,
             **upgrade.as_dict())
    if not yes:
        if not sys.stdin.isatty():
            fail(EXIT_USAGE, "not applied: confirm with --yes when not running in a terminal", as_json)
        if not click.confirm("Apply this upgrade?", default=False):
            fail(EXIT_USAGE, "not applied", as_json)
    with reported(as_json):
        revision = packupgrade.apply_upgrade(engine, upgrade, author=author())
        registered = reconcile_workflows(engine, as_json)
    if as_json:
        out.print_json(json.dumps({"ok": True, "revision": revision, **upgrade.as_dict()}, default=str))
    else:
        out.print(f"[green]Applied as revision {revision}.[/green]")
        print_registered(registered)
