"""What every scenario shares: installing a bench pack, timing loops, percentiles."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform import installer


@dataclass(frozen=True)
class Sizes:
    """Every size a run uses; `--rows` etc. override the defaults of a full or a quick run."""

    rows: int
    small_rows: int
    bulk_rows: int
    #: Seconds of load per HTTP round and side.
    http_seconds: float
    #: Alternating rounds per HTTP figure (after a warm-up round).
    http_rounds: int
    ops: int
    entities: int
    fields: int
    #: Single-record creates (and as many updates) per side of the workflows' write cost.
    workflow_writes: int = 2_000
    #: Jobs run by the worker processes (PostgreSQL; SQLite a quarter).
    workflow_jobs: int = 10_000
    #: Records created one at a time for the trigger-to-start latency.
    workflow_pings: int = 30

    @classmethod
    def default(cls, quick: bool) -> Sizes:
        if quick:
            return cls(rows=20_000, small_rows=1_000, bulk_rows=2_000, http_seconds=1, http_rounds=2, ops=40,
                       entities=40, fields=50, workflow_writes=100, workflow_jobs=1_000, workflow_pings=8)
        return cls(rows=1_000_000, small_rows=1_000, bulk_rows=50_000, http_seconds=4, http_rounds=3, ops=200,
                   entities=200, fields=50)


def install_pack(engine: sa.Engine, registry: FieldTypeRegistry, name: str, version: str,
                 entities: dict[str, dict[str, Any]]) -> None:
    """Install a pack written on the fly (JSON is YAML too), the way `slatecrm pack install` does."""
    installer.create_system_tables(engine)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / name
        (folder / "entities").mkdir(parents=True)
        (folder / "pack.yaml").write_text(json.dumps(
            {"name": name, "namespace": name.replace("-", "")[:16], "version": version,
             "title": name.title()}))
        for entity, body in entities.items():
            (folder / "entities" / f"{entity}.yaml").write_text(
                json.dumps({"kind": "entity", "name": entity, **body}))
        plan = installer.plan_install(engine, installer.load_packs([str(folder)], registry), registry)
        installer.install(engine, plan, author="bench")


def timings(operation: Callable[[int], object], count: int) -> list[float]:
    """Seconds per call of operation(i) for i in range(count)."""
    out = []
    for i in range(count):
        started = time.perf_counter()
        operation(i)
        out.append(time.perf_counter() - started)
    return out


def interleaved(measured: Callable[[int], object], baseline: Callable[[int], object], count: int,
                rounds: int = 5) -> tuple[list[float], list[float]]:
    """Both sides in alternating rounds, so load from other processes on a shared machine
    falls on both alike; the first round of each warms caches and is thrown away."""
    per_round = max(1, count // rounds)
    a: list[float] = []
    b: list[float] = []
    timings(measured, min(per_round, 20))
    timings(baseline, min(per_round, 20))
    for r in range(rounds):
        a += timings(_shifted(measured, r * per_round), per_round)
        b += timings(_shifted(baseline, r * per_round), per_round)
    return a, b


def _shifted(operation: Callable[[int], object], offset: int) -> Callable[[int], object]:
    return lambda i: operation(offset + i)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def ms(seconds: float) -> float:
    return seconds * 1000.0


#: The user the bench's HTTP requests are made as (an administrator: no record filter).
BENCH_USER = "bench@example.com"


def authorization(engine: sa.Engine) -> dict[str, str]:
    """The `Authorization` header of a new API token of the bench's administrator (made on
    first use): every page and endpoint needs a login (web/authentication.py)."""
    import datetime as dt

    from slatecrm.platform.identity import tokens, users
    from slatecrm.platform.storage import system

    with engine.connect() as conn:
        found = conn.execute(sa.select(system.users.c.id)
                             .where(system.users.c.email_key == BENCH_USER)).scalar()
    if found is None:
        found = users.add(engine, BENCH_USER, "Bench").id
        with engine.begin() as conn:
            conn.execute(system.user_roles.insert().values(user_id=found, role="administrator"))
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        # A token's name is unique among a user's live tokens, and each scenario asks for its
        # own (a bench run, or a rerun over the same database): the earlier one is revoked.
        earlier = conn.execute(sa.select(system.api_tokens.c.id).where(
            system.api_tokens.c.user_id == int(found), system.api_tokens.c.name == "bench",
            system.api_tokens.c.revoked_at.is_(None))).scalars().all()
        for token_id in earlier:
            tokens.revoke(conn, int(token_id), now)
        _, secret = tokens.create(conn, int(found), "bench", ("read", "write", "admin"),
                                  expires_at=None, now=now)
    return {"Authorization": f"Bearer {secret}"}
