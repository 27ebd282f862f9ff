"""`slatecrm pack export`, `pack diff` and `pack uninstall`: the pack lifecycle past install.

Added to cli.py's `pack` group when cli.py's import ends, like the other cli_*.py modules.
Export and diff change nothing; uninstall shows its plan and applies it as a revision, like
`pack install`, and a purge is confirmed by the count of rows it deletes, not by a yes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import click
from rich.markup import escape

from . import installer, packdiff, packexport
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
from .layers import installed_packs
from .storage import revisions as revision_store
from .uninstall import Uninstallation, plan_uninstall, uninstall


# --- export -----------------------------------------------------------------------------------
@pack.command("export")
@click.argument("out_path", metavar="OUT", type=click.Path(path_type=Path))
@click.option("--layer", type=click.Choice(packexport.LAYERS), default="organisation", show_default=True,
              help="organisation: the organisation's customisations, requiring the installed packs; "
                   "all: every installed pack and the customisations, in one pack requiring nothing")
@click.option("--name", required=True, help="the exported pack's name")
@click.option("--version", "version", required=True, help="its version (semantic: 1.0.0)")
@click.option("--namespace", help="its namespace (default: from the name)")
@click.option("--title", help="its title (default: from the name)")
@database_option
@json_option
def pack_export(out_path: Path, layer: str, name: str, version: str, namespace: str | None,
                title: str | None, database: str | None, as_json: bool) -> None:
    """Write the database's definitions as a pack: a directory OUT (new or empty), or a
    .zip when OUT ends in .zip. The pack is checked (read back and merged) first."""
    with reported(as_json), engine_for(database).connect() as conn:
        revision_store.current(conn)
        exported, metamodel = packexport.export(conn, field_types(), layer=layer, name=name,
                                                version=version, namespace=namespace, title=title,
                                                functions=rule_functions())
    try:
        packexport.write(exported.files, out_path, folder=f"{name}-{version}")
    except OSError as error:
        fail(EXIT_USAGE, str(error), as_json)
    requires = {r.pack: r.range for r in exported.manifest.requires}
    if as_json:
        out.print_json(json.dumps({"ok": True, "path": str(out_path), "name": name, "version": version,
                                   "layer": layer, "requires": requires, "files": sorted(exported.files),
                                   "entities": [e.name for e in metamodel.entities]}))
        return
    needs = ", ".join(f"{k} {v}" for k, v in requires.items()) or "nothing"
    out.print(f"[green]Exported[/green] {escape(name)} {escape(version)} ({layer}) to "
              f"{escape(str(out_path))}: {len(exported.files)} files; requires {escape(needs)}")


# --- diff -------------------------------------------------------------------------------------
@pack.command("diff")
@click.argument("paths", nargs=-1, required=True, metavar="A [B]")
@click.option("--installed", is_flag=True, help="compare pack A with the version installed under its name")
@database_option
@json_option
def pack_diff(paths: Sequence[str], installed: bool, database: str | None, as_json: bool) -> None:
    """What changes from pack A to pack B (directories, .zip files or shipped pack names):
    entities, fields, pipelines and stages, choice options, roles, workflows. With
    --installed: from the installed version of A's pack to A. Changes nothing."""
    if len(paths) != (1 if installed else 2):
        fail(EXIT_USAGE, "give two packs, A B, or one pack with --installed", as_json)
    registry = field_types()
    with reported(as_json):
        loaded = installer.load_packs(list(paths), registry)
        if installed:
            with engine_for(database).connect() as conn:
                revision_store.current(conn)
                found = {p.name: p for p in installed_packs(conn, registry)}
            if loaded[0].name not in found:
                fail(EXIT_USAGE, f"pack {loaded[0].name!r} is not installed (installed: "
                                 f"{', '.join(found) or 'none'})", as_json)
            loaded.insert(0, found[loaded[0].name])
    before, after = loaded
    found_differences = packdiff.differences(packdiff.pack_shape(before), packdiff.pack_shape(after))
    counts = packdiff.summary(found_differences)
    sides = [{"name": p.name, "version": p.version, "origin": p.origin if p is not before or not installed
              else "installed"} for p in (before, after)]
    if as_json:
        out.print_json(json.dumps({"ok": True, "from": sides[0], "to": sides[1], "summary": counts,
                                   "differences": [d.as_dict() for d in found_differences]}, default=str))
        return
    out.print(f"[bold]{escape(before.name)} {escape(before.version)}[/bold] ({escape(sides[0]['origin'])}) → "
              f"[bold]{escape(after.name)} {escape(after.version)}[/bold] ({escape(sides[1]['origin'])}): "
              f"{counts['added']} added, {counts['removed']} removed, {counts['changed']} changed")
    for difference in found_differences:
        colour = {"added": "green", "removed": "red", "changed": "yellow"}[difference.change]
        out.print(f"  [{colour}]{escape(difference.text())}[/{colour}]")


# --- uninstall ----------------------------------------------------------------------------------
@pack.command("uninstall")
@click.argument("name")
@click.option("--purge", is_flag=True,
              help="delete the pack's data too: drop its tables and the columns it added, for good")
@click.option("--yes", is_flag=True, help="apply without asking (a purge also needs --confirm-rows)")
@click.option("--confirm-rows", type=click.IntRange(0), metavar="N",
              help="with --purge: the number of rows the plan says it deletes, as confirmation")
@database_option
@json_option
def pack_uninstall(name: str, purge: bool, yes: bool, confirm_rows: int | None, database: str | None,
                   as_json: bool) -> None:
    """Uninstall a pack: its entities and fields are retired (data kept, back when it is
    installed again), its roles and workflows removed. Refused while another installed pack
    requires it, or while the organisation's customisations extend its entities."""
    if confirm_rows is not None and not purge:
        fail(EXIT_USAGE, "--confirm-rows goes with --purge", as_json)
    with reported(as_json):
        engine = engine_for(database)
        planned = plan_uninstall(engine, name, field_types(), purge=purge, functions=rule_functions())
    report = {"pack": name, "version": planned.version, "purge": purge, "deleted_rows": planned.rows_total,
              "plan": planned.plan.as_dict()}
    if not as_json:
        print_plan(planned.plan, planned.source)
        if purge:
            out.print(f"[red]The purge deletes {planned.rows_total:,} row(s) for good[/red]")
    if planned.plan.blocked:
        fail(EXIT_REFUSED, "the plan puts data at risk (see above); nothing was changed", as_json, **report)
    confirm(planned, yes, confirm_rows, as_json)
    with reported(as_json):
        revision = uninstall(engine, planned, author=author())
        registered = reconcile_workflows(engine, as_json)
    if as_json:
        out.print_json(json.dumps({"ok": True, "revision": revision, **report}, default=str))
        return
    out.print(f"[green]Uninstalled {escape(name)} {escape(planned.version)} as revision {revision}.[/green]")
    print_registered(registered)


def confirm(planned: Uninstallation, yes: bool, confirm_rows: int | None, as_json: bool) -> None:
    """A purge that deletes rows is confirmed by their count (given, or typed); anything
    else by --yes or a yes."""
    total = planned.rows_total
    if planned.purge and total:
        if confirm_rows is None and (yes or as_json or not sys.stdin.isatty()):
            fail(EXIT_USAGE, f"not applied: the purge deletes {total:,} row(s) for good; confirm with "
                             f"--confirm-rows {total}", as_json, deleted_rows=total)
        given = confirm_rows if confirm_rows is not None else click.prompt(
            f"Type the number of rows to delete ({total}) to purge them", type=int, default=-1,
            show_default=False)
        if given != total:
            fail(EXIT_USAGE, f"not applied: the purge deletes {total:,} row(s), not {given:,}; nothing was "
                             "changed", as_json, deleted_rows=total)
        return
    if yes or confirm_rows is not None:
        return
    if not sys.stdin.isatty():
        fail(EXIT_USAGE, "not applied: confirm with --yes when not running in a terminal", as_json)
    if not click.confirm("Apply this plan?", default=False):
        fail(EXIT_USAGE, "not applied", as_json)
