"""The `slatecrm` command.

Exit codes: 0 done; 1 the definitions have problems (nothing changed); 2 wrong usage;
3 the plan puts data at risk and was refused (nothing changed); 4 the database is not
reachable, not initialised, or changed meanwhile; 5 applying failed and was rolled back.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import pluggy
import sqlalchemy as sa
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from slatecrm import __version__
from slatecrm.metamodel.errors import DefinitionError
from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.layering import merge
from slatecrm.metamodel.model import MetamodelFormatError
from slatecrm.metamodel.rules.functions import RuleFunctions
from slatecrm.plugins import manager as plugin_manager

from . import installer
from .storage import revisions as revision_store
from .storage import upgrades
from .storage.apply import ForeignKeyViolation, StaleSnapshot
from .storage.engine import URL_VARIABLE, create_engine, database_url, ensure_database
from .storage.plan import ConversionFailed, Plan, PlanError
from .storage.revisions import NotInitialised
from .storage.statistics import analyze, analyze_on
from .web import hosts, proxies

EXIT_INVALID, EXIT_USAGE, EXIT_REFUSED, EXIT_DATABASE, EXIT_APPLY = 1, 2, 3, 4, 5

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)
F = TypeVar("F", bound=Callable[..., Any])


def database_option(function: F) -> F:
    return click.option(
        "--database", "database", metavar="URL", default=None,
        help=f"database URL (default: ${URL_VARIABLE}, else sqlite:///slatecrm.db)")(function)


def json_option(function: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")(function)


def fail(code: int, message: str, as_json: bool, **extra: Any) -> NoReturn:
    if as_json:
        out.print_json(json.dumps({"ok": False, "error": message, **extra}, default=str))
    else:
        err.print(f"[red]error:[/red] {escape(message)}")
    sys.exit(code)


@contextmanager
def reported(as_json: bool) -> Iterator[None]:
    """Known failures become a message and an exit code, never a traceback."""
    try:
        yield
    except DefinitionError as error:
        if as_json:
            out.print_json(json.dumps({"ok": False, "problems": [p.as_dict() for p in error.problems]}))
        else:
            for problem in error.problems:
                err.print(escape(str(problem)))
            err.print(f"[red]{len(error.problems)} problem(s); nothing was changed[/red]")
        sys.exit(EXIT_INVALID)
    except PlanError as error:
        fail(EXIT_INVALID, str(error), as_json)
    except (NotInitialised, StaleSnapshot, MetamodelFormatError) as error:
        fail(EXIT_DATABASE, str(error), as_json)
    except (ConversionFailed, ForeignKeyViolation) as error:
        fail(EXIT_APPLY, f"{error}; the change was rolled back, nothing was changed", as_json)
    except sa.exc.OperationalError as error:
        fail(EXIT_DATABASE, f"database: {error.orig}", as_json)
    except sa.exc.DBAPIError as error:
        fail(EXIT_APPLY, f"database refused the change ({error.orig}); it was rolled back, "
                         "nothing was changed", as_json)


def author() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def engine_for(database: str | None, *, create: bool = False) -> sa.Engine:
    """An engine that lives as long as the command (its connections closed at the end).

    Only `init` may create a database: elsewhere a missing SQLite file is an error, not a
    new empty file.
    """
    url = sa.engine.make_url(database_url(database))
    file = url.database if url.get_backend_name() == "sqlite" else None
    if not create and file not in (None, "", ":memory:") and not Path(str(file)).exists():
        raise NotInitialised(f"there is no database at {file}: run `slatecrm init`")
    engine = create_engine(url)
    click.get_current_context().call_on_close(engine.dispose)
    return engine


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="slatecrm")
@click.pass_context
def main(ctx: click.Context) -> None:
    """SlateCRM: a metadata-driven CRM platform."""
    if ctx.obj is None:  # a caller (a test) may give its own: main(obj=manager)
        ctx.obj = plugin_manager.make_plugin_manager()


def plugins() -> pluggy.PluginManager:
    """The command's plugin manager: the installed plugins, built once per command."""
    manager: pluggy.PluginManager = click.get_current_context().find_root().obj
    return manager


def field_types() -> FieldTypeRegistry:
    return plugin_manager.field_types(plugins())


def rule_functions() -> RuleFunctions:
    return plugin_manager.rule_functions(plugins())


# --- init ----------------------------------------------------------------------------------
@main.command()
@database_option
@click.option("--no-default-packs", is_flag=True, help="create the tables only")
@click.option("--admin-email", metavar="EMAIL",
              help="create the first administrator (unless one exists); its password is read from "
                   "standard input when that is not a terminal, else asked for twice")
@click.option("--admin-name", metavar="NAME", help="the administrator's name (default: Administrator)")
@click.option("--generate-password", is_flag=True,
              help="with --admin-email: generate the administrator's password and print it once")
@json_option
def init(database: str | None, no_default_packs: bool, admin_email: str | None, admin_name: str | None,
         generate_password: bool, as_json: bool) -> None:
    """Create the database and install the default packs (crm-core, sales); bring an older
    database's platform tables up to date; with --admin-email, make the first administrator."""
    from . import cli_users
    from .identity.users import valid_email

    if (admin_name or generate_password) and not admin_email:
        fail(EXIT_USAGE, "--admin-name and --generate-password go with --admin-email", as_json)
    url = database_url(database)
    with cli_users.reported(as_json):
        if admin_email:
            valid_email(admin_email)  # a typo is said before anything is made
        created_db = ensure_database(url)
        engine = engine_for(url, create=True)
        new = installer.create_system_tables(engine, audited_as=author())
        revision = None
        if not no_default_packs:
            registry = field_types()
            installation = installer.plan_install(
                engine, installer.load_packs(list(installer.DEFAULT_PACKS), registry), registry,
                functions=rule_functions())
            if not installation.is_empty:
                revision = installer.install(engine, installation, author=author())
        registered = reconcile_workflows(engine, as_json) if revision else []
    admin = (cli_users.first_admin(engine, admin_email, admin_name, generate_password, as_json)
             if admin_email else None)
    if as_json:
        out.print_json(json.dumps({"ok": True, "database_created": created_db, "initialised": new,
                                   "revision": revision, **({"admin": admin} if admin else {})}))
        return
    shown = sa.engine.make_url(url).render_as_string(hide_password=True)
    out.print(f"{'Initialised' if new else 'Already initialised:'} {shown}")
    if revision:
        out.print(f"Installed {', '.join(installer.DEFAULT_PACKS)} as revision {revision}")
        print_registered(registered)
    if admin:
        cli_users.print_first_admin(admin)


# --- packs --------------------------------------------------------------------------------
@main.group()
def pack() -> None:
    """Validate, plan, install, list, export, diff and uninstall configuration packs."""


@pack.command("validate")
@click.argument("paths", nargs=-1, required=True)
@json_option
def pack_validate(paths: Sequence[str], as_json: bool) -> None:
    """Check packs: every file against the schema, then the merged model.

    Packs a given pack requires are taken from the other PATHS, else from the packs
    shipped with SlateCRM.
    """
    registry = field_types()
    with reported(as_json):
        packs = installer.load_packs(list(paths), registry)
        metamodel = merge(installer.with_shipped_dependencies(packs, [], registry), registry,
                          functions=rule_functions())
    summary = [{"name": p.name, "version": p.version, "entities": [e.name for e in p.entities],
                "extensions": [x.entity for x in p.extensions]} for p in packs]
    if as_json:
        out.print_json(json.dumps({"ok": True, "packs": summary,
                                   "entities": [e.name for e in metamodel.entities]}))
        return
    for item in summary:
        out.print(f"[green]✓[/green] {item['name']} {item['version']}: valid "
                  f"({len(item['entities'])} entities, {len(item['extensions'])} extensions)")


def print_plan(plan: Plan, title: str) -> None:
    out.print(f"[bold]{escape(title)}[/bold] — against revision {plan.base_revision} "
              f"({plan.dialect}), {len(plan.changes)} change(s)")
    for change in plan.changes:
        mark = "[red]✗[/red]" if change.blocked else "•"
        rewrite = " [yellow](rewrites the table)[/yellow]" if change.rewrites_table else ""
        out.print(f"  {mark} {escape(change.summary)}{rewrite}")
        for statement in change.sql:
            out.print(f"      [dim]{escape(' '.join(statement.split()))}[/dim]")
        for risk in change.risks:
            colour = "red" if risk.blocking else "yellow"
            label = "refused" if risk.blocking else "warning"
            out.print(f"      [{colour}]{label}: {escape(risk.message)}[/{colour}]")


def installation_json(installation: installer.Installation) -> dict[str, Any]:
    return {
        "packs": [{"name": c.name, "from": c.before, "to": c.after, "action": c.verb}
                  for c in installation.pack_changes],
        "plan": installation.plan.as_dict(),
    }


@pack.command("plan")
@click.argument("paths", nargs=-1, required=True)
@database_option
@json_option
def pack_plan(paths: Sequence[str], database: str | None, as_json: bool) -> None:
    """Show what installing or upgrading packs would change. Changes nothing."""
    registry = field_types()
    with reported(as_json):
        installation = installer.plan_install(engine_for(database),
                                              installer.load_packs(list(paths), registry), registry,
                                              functions=rule_functions())
    if as_json:
        out.print_json(json.dumps({"ok": not installation.plan.blocked, **installation_json(installation)},
                                  default=str))
    else:
        print_plan(installation.plan, installation.source)
    if installation.plan.blocked:
        sys.exit(EXIT_REFUSED)


def confirm_and_apply(engine: sa.Engine, installation: installer.Installation, yes: bool,
                      as_json: bool) -> None:
    if installation.is_empty:
        if as_json:
            out.print_json(json.dumps({"ok": True, "revision": None, **installation_json(installation)}))
        else:
            out.print("Nothing to do: the packs are installed as given.")
        return
    if not as_json:
        print_plan(installation.plan, installation.source)
    if installation.plan.blocked:
        fail(EXIT_REFUSED, "the plan puts data at risk (see above); nothing was changed", as_json,
             **installation_json(installation))
    if not yes:
        if not sys.stdin.isatty():
            fail(EXIT_USAGE, "not applied: confirm with --yes when not running in a terminal", as_json)
        if not click.confirm("Apply this plan?", default=False):
            fail(EXIT_USAGE, "not applied", as_json)
    with reported(as_json):
        revision = installer.install(engine, installation, author=author())
        registered = reconcile_workflows(engine, as_json)
    if as_json:
        out.print_json(json.dumps({"ok": True, "revision": revision, **installation_json(installation)},
                                  default=str))
    else:
        out.print(f"[green]Applied as revision {revision}.[/green]")
        print_registered(registered)


def reconcile_workflows(engine: sa.Engine, as_json: bool) -> list[str]:
    """After a revision is committed: the registrations of its time and schedule workflows
    made to match it (platform/workflows/schedules.py), so they are registered at once, not
    at a worker's next round. The revision stands whatever happens here: a failure is said
    (a worker reconciles at its start and whenever it sees a new revision)."""
    import datetime as dt

    from .services import records_service
    from .workflows.worker import reconcile

    try:
        return reconcile(engine, records_service(engine, plugins()), dt.datetime.now(dt.UTC))
    except Exception as error:  # the install is committed: say it, go on
        if not as_json:
            err.print(f"[yellow]warning:[/yellow] the workflows' registrations were not brought up to date "
                      f"({escape(str(error))}); a worker does it when it starts")
        return []


def print_registered(changes: Sequence[str]) -> None:
    for change in changes:
        out.print(f"Workflows: {escape(change)}")


@pack.command("install")
@click.argument("paths", nargs=-1, required=True)
@database_option
@click.option("--yes", is_flag=True, help="apply without asking")
@json_option
def pack_install(paths: Sequence[str], database: str | None, yes: bool, as_json: bool) -> None:
    """Install or upgrade packs: show the plan, then apply it in one transaction."""
    registry = field_types()
    with reported(as_json):
        engine = engine_for(database)
        installation = installer.plan_install(engine, installer.load_packs(list(paths), registry),
                                              registry, functions=rule_functions())
    confirm_and_apply(engine, installation, yes, as_json)


@pack.command("list")
@database_option
@json_option
def pack_list(database: str | None, as_json: bool) -> None:
    """The installed packs."""
    from .storage.system import packs as pack_table

    with reported(as_json), engine_for(database).connect() as conn:
        revision_store.current(conn)
        rows = conn.execute(sa.select(pack_table).order_by(pack_table.c.name)).all()
    if as_json:
        out.print_json(json.dumps([{"name": r.name, "namespace": r.namespace, "version": r.version,
                                    "title": r.title, "revision": r.revision_id,
                                    "installed_at": r.installed_at.isoformat()} for r in rows]))
        return
    table = Table("pack", "version", "namespace", "title", "revision", "installed")
    for r in rows:
        table.add_row(r.name, r.version, r.namespace, r.title, str(r.revision_id),
                      r.installed_at.strftime("%Y-%m-%d %H:%M"))
    out.print(table)


@pack.command("schema")
def pack_schema() -> None:
    """Print the JSON Schema of pack files (for editors)."""
    from slatecrm.metamodel.schemas import schema_for_docs

    out.print_json(json.dumps(schema_for_docs(field_types())))


# --- plugins ---------------------------------------------------------------------------------
@main.command("plugins")
@click.option("--all", "show_all", is_flag=True, help="include the built-in plugins")
@json_option
def plugins_command(show_all: bool, as_json: bool) -> None:
    """The installed plugins (entry point `slatecrm`) and the hooks each implements."""
    found = [p for p in plugin_manager.plugin_list(plugins()) if show_all or not p["builtin"]]
    if as_json:
        out.print_json(json.dumps(found))
        return
    if not found:
        out.print("No plugins installed.")
        return
    table = Table("plugin", "package", "version", "hooks")
    for item in found:
        hooks = item["hooks"]
        assert isinstance(hooks, list)
        table.add_row(str(item["name"]), str(item["package"] or ""), str(item["version"] or ""),
                      ", ".join(hooks))
    out.print(table)


# --- revisions and purge --------------------------------------------------------------------
@main.command()
@database_option
@click.option("--show", "show", type=int, metavar="N", help="one revision's plan in full")
@json_option
def revisions(database: str | None, show: int | None, as_json: bool) -> None:
    """The metamodel revisions: every applied change, with its source and time."""
    with reported(as_json), engine_for(database).connect() as conn:
        if show is None:
            items = revision_store.history(conn)
        else:
            shown = revision_store.get(conn, show)
            if shown is None:
                fail(EXIT_USAGE, f"there is no revision {show}", as_json)
            items = [shown]
    if as_json:
        out.print_json(json.dumps([{"id": r.id, "created_at": r.created_at.isoformat(),
                                    "source": r.source, "author": r.author, "summary": r.summary,
                                    **({"plan": r.plan} if show is not None else {})}
                                   for r in items], default=str))
        return
    if show is not None:
        r = items[0]
        out.print(f"[bold]Revision {r.id}[/bold] {r.created_at:%Y-%m-%d %H:%M:%S} by {r.author}: "
                  f"{escape(r.source)}")
        for change in r.plan.get("changes", []):
            out.print(f"  • {escape(change['summary'])}")
            for statement in change["sql"]:
                out.print(f"      [dim]{escape(' '.join(statement.split()))}[/dim]")
        return
    table = Table("revision", "applied", "by", "source", "changes")
    for r in items:
        table.add_row(str(r.id), r.created_at.strftime("%Y-%m-%d %H:%M:%S"), r.author, r.source,
                      r.summary)
    out.print(table)


@main.command()
@click.argument("fields", nargs=-1, required=True, metavar="ENTITY.FIELD...")
@database_option
@click.option("--yes", is_flag=True, help="purge without asking")
@json_option
def purge(fields: Sequence[str], database: str | None, yes: bool, as_json: bool) -> None:
    """Drop the columns of retired fields, and their data, for good."""
    pairs = []
    for item in fields:
        entity, _, name = item.partition(".")
        if not entity or not name:
            fail(EXIT_USAGE, f"{item!r}: write ENTITY.FIELD", as_json)
        pairs.append((entity, name))
    with reported(as_json):
        engine = engine_for(database)
        installation = installer.plan_purge(engine, pairs, field_types(), functions=rule_functions())
    confirm_and_apply(engine, installation, yes, as_json)


@main.command("recompute")
@click.argument("fields", nargs=-1, required=True, metavar="ENTITY.FIELD...")
@database_option
@json_option
def recompute(fields: Sequence[str], database: str | None, as_json: bool) -> None:
    """Compute roll-up fields again from the child records, for every record (after a restore,
    or SQL of your own that bypassed the records service); reports how many changed."""
    from .records.rollups import rollups_of
    from .services import records_service

    with reported(as_json):
        engine = engine_for(database)
        records = records_service(engine, plugins())
        rollups = rollups_of(records.full_snapshot())
        wanted = []
        for item in fields:
            entity, _, name = item.partition(".")
            rollup = rollups.find(entity, name)
            if rollup is None:
                known = ", ".join(f"{r.parent}.{r.field}" for r in rollups.all) or "none"
                fail(EXIT_USAGE, f"{item!r} is not a roll-up field (roll-ups: {known})", as_json)
            wanted.append(rollup)
        changed: dict[str, int] = {}
        with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
            for rollup in wanted:
                changed[f"{rollup.parent}.{rollup.field}"] = rollups.recompute_all(conn, rollup)
    if as_json:
        out.print_json(json.dumps({"ok": True, "changed": changed}))
        return
    for name, count in changed.items():
        out.print(f"{name}: {count} record(s) changed")


@main.command("sample-data")
@database_option
@click.option("--count", default=300, show_default=True, type=click.IntRange(1, 100_000),
              help="records per entity")
@click.option("--seed", default=1, show_default=True, type=int, help="the same seed makes the same data")
@click.option("--if-empty", is_flag=True, help="do nothing when any entity already has records")
@json_option
def sample_data(database: str | None, count: int, seed: int, if_empty: bool, as_json: bool) -> None:
    """Fill every entity of the installed metamodel with generated records (for demos)."""
    from .records.errors import RecordError
    from .sampledata import Generator
    from .services import records_service

    with reported(as_json):
        engine = engine_for(database)
        records = records_service(engine, plugins())
        pages = {name: records.page(name) for name in records.compiled()}
        # A count past its budget is not known: the records the page holds are there at least.
        existing = {name: p.count if p.count is not None else len(p.records) for name, p in pages.items()}
        if if_empty and any(existing.values()):
            if as_json:
                out.print_json(json.dumps({"ok": True, "skipped": True, "existing": existing}))
            else:
                out.print(f"Sample data skipped: the database has {sum(existing.values())} records already")
            return
        try:
            report = Generator(records, seed=seed).run(count)
        except RecordError as error:
            fail(EXIT_INVALID, f"generated data was refused: {error}", as_json)
    analyze(engine)  # a large load: the planner needs the new sizes (storage/statistics.py)
    if as_json:
        out.print_json(json.dumps({"ok": True, "users": report.users, "created": report.created,
                                   "logins": report.logins, "password": report.password}))
        return
    for name, made in report.created.items():
        out.print(f"{made:>6} {name}")
    out.print(f"Created {sum(report.created.values())} records" +
              (f" and {report.users} users" if report.users else ""))
    if report.logins:
        out.print(f"Sample users (password, shown this once: {escape(report.password or '')}):")
        for login in report.logins:
            out.print(f"  {escape(login['login'])}  {escape(login['granted'] or 'no role')}, "
                      f"team {escape(login['team'])}{' (manager)' if login['manager'] else ''}"
                      + "".join(f", {escape(k)} {escape(str(v))}" for k, v in login["attributes"].items()))


@main.command("analyze")
@database_option
@json_option
def analyze_command(database: str | None, as_json: bool) -> None:
    """Gather the query planner's statistics for the whole database (ANALYZE).

    Applies, large creates and sample-data do this on their own; run it after loading
    data by other means (a restore, SQL of your own), or from a nightly job."""
    with reported(as_json):
        engine = engine_for(database)
        with engine.connect() as conn:
            analyze_on(conn)
    if as_json:
        out.print_json(json.dumps({"ok": True}))
    else:
        out.print("Statistics gathered (ANALYZE)")


@main.command()
@database_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on (0.0.0.0: every interface; every page and the API need a login)")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="processes; a metamodel change made through one is live in all within a second")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME[:PORT]",
              help="a host name this server answers to (repeat for more; default: the address it "
                   f"listens on, localhost and 127.0.0.1 with its port; or ${hosts.VARIABLE})")
@click.option("--trusted-proxy", "trusted_proxies", multiple=True, metavar="ADDRESS|CIDR",
              help="a reverse proxy whose X-Forwarded-For/-Proto/-Host are believed (repeat for "
                   f"more; default: none, or ${proxies.VARIABLE})")
@click.option("--allow-open-api", is_flag=True, hidden=True,
              help="deprecated, does nothing: every request needs a login now")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="a line per request on standard output (a tenth of a small request's time in the "
                   "server; leave it to the reverse proxy when one logs requests)")
@click.option("--worker/--no-worker", "embedded_worker", default=False, show_default=True,
              help="run a workflow worker in a thread of each server process (small installations, "
                   "the demo; else run `slatecrm worker` processes)")
def serve(database: str | None, host: str, port: int, workers: int, allowed_hosts: tuple[str, ...],
          trusted_proxies: tuple[str, ...], allow_open_api: bool, access_log: bool,
          embedded_worker: bool) -> None:
    """Serve the web UI (at /) and the JSON API (at /api/v1) with uvicorn. Every page and
    endpoint but /login, /static and /health needs a session or an API token
    (docs/security.md); behind a reverse proxy with TLS, see the README."""
    import uvicorn

    if allow_open_api:
        err.print("--allow-open-api is deprecated and does nothing: every request needs a login now")
    hosts_text = " ".join(allowed_hosts) or os.environ.get(hosts.VARIABLE, "") or \
        " ".join(hosts.bound_to(host, port))
    proxies_text = " ".join(trusted_proxies) or os.environ.get(proxies.VARIABLE, "")
    try:  # refused here, by name, rather than in every worker
        hosts.AllowedHosts.parse(hosts_text)
        proxies.TrustedProxies.from_environment({proxies.VARIABLE: proxies_text})
        if embedded_worker:
            from .workflows.settings import ExecutionSettings

            ExecutionSettings.from_environment()  # SLATECRM_WORKFLOW_* that are not numbers
    except ValueError as error:
        fail(EXIT_USAGE, str(error), False)
    url = database_url(database)
    with reported(False), engine_for(url).connect() as conn:
        revision_store.current(conn)
        upgrades.check_current(conn, field_types())  # an older SlateCRM's database: init first
    # Every worker builds its app from the environment.
    from .web.app import WORKER_VARIABLE

    os.environ.update({URL_VARIABLE: url, hosts.VARIABLE: hosts_text, proxies.VARIABLE: proxies_text,
                       WORKER_VARIABLE: "1" if embedded_worker else "0"})
    # uvicorn's own X-Forwarded-* handling is off: web/proxies.py does it, from the trusted list only.
    uvicorn.run("slatecrm.platform.web.app:app_from_environment", factory=True, host=host, port=port,
                workers=workers, log_level="info", access_log=access_log, proxy_headers=False)


if __name__ == "__main__":  # pragma: no cover
    # The imported module (with its commands registered), not this copy run as a script.
    from slatecrm.platform.cli import main as registered

    registered()
else:
    # `slatecrm user …`, `team …`, `token …`, `audit`, `worker`, `workflow …`, `pack export /
    # diff / uninstall` and `pack upgrade` live in cli_users.py, cli_teams.py, cli_tokens.py,
    # cli_audit.py, cli_workflows.py, cli_packlife.py and cli_upgrade.py, which use this
    # module's helpers and add their commands to `main` when their import ends (whichever
    # module is imported first).
    from . import (  # noqa: F401
        cli_audit,
        cli_packlife,
        cli_teams,
        cli_tokens,
        cli_upgrade,
        cli_users,
        cli_workflows,
    )
