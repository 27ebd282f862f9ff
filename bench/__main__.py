"""`make bench` (or `python -m bench [--quick]`): every scenario on SQLite and PostgreSQL."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from slatecrm.platform.storage.engine import create_engine

from . import report, rule_eval, schema_change

POSTGRES = os.environ.get("SLATECRM_BENCH_POSTGRES_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@contextmanager
def database(kind: str) -> Iterator[sa.Engine]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            engine = create_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
            yield engine
            engine.dispose()
        return
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--rows", type=int, help="rows of the large-table scenarios")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args(argv)
    rows = args.rows or (20_000 if args.quick else 1_000_000)
    figures: list[report.Figure] = []
    for kind in args.databases.split(","):
        with database(kind) as engine:
            figures += schema_change.run(engine, rows)
    figures += rule_eval.run(args.quick)
    path = report.write(figures, Path(args.out), args.quick)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
