"""`make bench` (or `python -m bench [--quick]`): every scenario on SQLite and PostgreSQL.

Each scenario is a module of this package with a `run(...) -> list[Figure]`. The large
CRM data set is loaded once per database and shared by the scenarios that read it; the
schema change and the runtime build get databases of their own.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path

import sqlalchemy as sa

from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.storage.engine import create_engine
from slatecrm.platform.storage.runtime import RuntimeHolder
from slatecrm.plugins.manager import field_types, make_plugin_manager

from . import (
    access_filter,
    bulk_create,
    caps,
    crud,
    dataset,
    http_load,
    layouts,
    lists,
    report,
    rule_eval,
    runtime_build,
    schema_change,
    workflows,
)
from .common import Sizes

POSTGRES = os.environ.get("SLATECRM_BENCH_POSTGRES_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SCENARIOS = ("crud", "lists", "layouts", "http", "caps", "access", "bulk", "schema", "runtime", "rules",
             "workflows")
#: The scenarios on the shared CRM data set, in the order they run (bulk last: it adds rows;
#: access after the others: it gives the deals owners).
SHARED_SCENARIOS = ("crud", "lists", "layouts", "http", "caps", "access", "bulk")
SHARED = ("The machine was shared with other work during this run, so absolute numbers are noisier "
          "than on a quiet machine; each ratio compares two sides measured in alternating rounds of "
          "the same run.")


@contextmanager
def database(kind: str) -> Iterator[sa.Engine]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            engine = create_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
            yield engine
            engine.dispose()
        return
    if kind != "postgresql":
        raise SystemExit(f"--databases: {kind!r} is not one of sqlite, postgresql")
    name = f"slatecrm_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = create_engine(sa.engine.make_url(POSTGRES).set(database=name))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def shared_step(name: str, engine: sa.Engine, records: RecordsService, sizes: Sizes,
                out: Path, loadgen: str) -> list[report.Figure]:
    """A scenario on the shared CRM data set."""
    if name == "crud":
        return crud.run(engine, records, sizes)
    if name == "lists":
        return lists.run(engine, records, sizes)
    if name == "layouts":
        return layouts.run(engine, records, sizes)
    if name == "http":
        return http_load.run(engine, sizes, out, loadgen)
    if name == "caps":
        return caps.run(engine, sizes)
    if name == "access":
        return access_filter.run(engine, records, sizes)
    return bulk_create.run(engine, records, sizes)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run, under two minutes)")
    p.add_argument("--shared", action="store_true", help="say in the report that the machine was busy")
    p.add_argument("--rows", type=int, help="records of the large entity (default 1,000,000)")
    p.add_argument("--small-rows", type=int, help="records of the small entity (default 1,000)")
    p.add_argument("--bulk-rows", type=int, help="records created in the bulk scenario (default 50,000)")
    p.add_argument("--http-seconds", type=float, help="seconds of load per HTTP round and side (default 4)")
    p.add_argument("--http-rounds", type=int, help="alternating rounds per HTTP figure (default 3)")
    p.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto",
                   help="the HTTP load generator: wrk when installed (auto), or the Python one")
    p.add_argument("--ops", type=int, help="calls per single-record figure (default 200)")
    p.add_argument("--entities", type=int, help="entities of the runtime-build metamodel (default 200)")
    p.add_argument("--fields", type=int, help="fields per entity of that metamodel (default 50)")
    p.add_argument("--workflow-writes", type=int,
                   help="single-record creates and updates per side of the workflows' write cost "
                   "(default 2,000)")
    p.add_argument("--workflow-jobs", type=int,
                   help="jobs the workflow workers run on PostgreSQL, a quarter on SQLite (default 10,000)")
    p.add_argument("--workflow-pings", type=int, help="records of the trigger-to-start latency (default 30)")
    p.add_argument("--databases", default="sqlite,postgresql")
    p.add_argument("--only", help=f"comma-separated scenarios out of {', '.join(SCENARIOS)}")
    p.add_argument("--out", default="bench/results", help="folder of report.md and report.json")
    p.add_argument("--publish", help="also write the report as <folder>/benchmarks.md and .json")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    sizes = Sizes.default(args.quick)
    overrides = {k: getattr(args, k) for k in asdict(sizes) if getattr(args, k) is not None}
    sizes = replace(sizes, **overrides)
    only = set(args.only.split(",")) if args.only else set(SCENARIOS)
    if unknown := only - set(SCENARIOS):
        raise SystemExit(f"--only: unknown scenarios {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(SCENARIOS)}")
    started = time.perf_counter()
    figures: list[report.Figure] = []
    skipped: list[str] = []
    postgres_version = ""
    registry = field_types(make_plugin_manager())
    for kind in args.databases.split(","):
        if only & set(SHARED_SCENARIOS):
            with database(kind) as engine:
                if kind == "postgresql":
                    with engine.connect() as conn:
                        postgres_version = str(conn.exec_driver_sql("SHOW server_version").scalar())
                log(f"{kind}: loading {sizes.rows:,} deals and {sizes.small_rows:,} companies")
                dataset.install(engine, registry)
                dataset.fill(engine, sizes.rows, sizes.small_rows)
                records = RecordsService(engine, RuntimeHolder(engine, registry), registry)
                for name in SHARED_SCENARIOS:
                    if name in only:
                        log(f"{kind}: {name}")
                        figures += shared_step(name, engine, records, sizes, Path(args.out), args.loadgen)
        if "schema" in only:
            with database(kind) as engine:
                log(f"{kind}: schema change at {sizes.rows:,} rows")
                figures += schema_change.run(engine, sizes.rows)
        if "runtime" in only:
            with database(kind) as engine:
                log(f"{kind}: runtime build, {sizes.entities} entities × {sizes.fields} fields")
                figures += runtime_build.run(engine, registry, sizes)
        if "workflows" in only:
            with database(kind) as engine:
                if kind == "postgresql" and not postgres_version:
                    with engine.connect() as conn:
                        postgres_version = str(conn.exec_driver_sql("SHOW server_version").scalar())
                log(f"{kind}: workflows, {sizes.workflow_writes:,} writes a side, "
                    f"{sizes.workflow_jobs if kind == 'postgresql' else sizes.workflow_jobs // 4:,} jobs")
                figures += workflows.run(engine, registry, sizes)
    if "rules" in only:
        log("rule evaluation")
        figures += rule_eval.run(args.quick)
    run = {"seconds": time.perf_counter() - started, "sizes": asdict(sizes),
           "databases": args.databases, "skipped": skipped, "shared": SHARED if args.shared else ""}
    info = report.machine(postgres_version)
    findings = Path(__file__).with_name("findings.md")
    extra = findings.read_text() if findings.exists() and not args.quick else ""
    path = report.write(figures, Path(args.out), args.quick, run=run, info=info, extra=extra)
    if args.publish:
        report.write(figures, Path(args.publish), args.quick, run=run, info=info, extra=extra,
                     name="benchmarks")
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
