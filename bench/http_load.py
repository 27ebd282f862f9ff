"""HTTP list and get under 8 concurrent clients: the large entity vs a 1,000-record one.

`slatecrm serve` (one uvicorn worker) runs on the bench database; a second process,
`bench.loadgen`, sends a fixed number of requests from 8 clients over keep-alive
connections to 127.0.0.1. The same requests on the small entity are the baseline: the
difference is what a million records cost a user.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from . import dataset
from .common import Sizes, percentile
from .report import Figure

CLIENTS = 8
GOAL_MS = 50.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def server(engine: sa.Engine, log: Path) -> Iterator[str]:
    port = free_port()
    url = engine.url.render_as_string(hide_password=False)
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "slatecrm.platform.cli", "serve", "--database", url, "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/v1/meta", timeout=5):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start; see {log}") from None
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def load(base: str, paths: list[str]) -> list[float]:
    done = subprocess.run([sys.executable, "-m", "bench.loadgen", base, str(CLIENTS), *paths],
                          capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parent.parent)
    result = json.loads(done.stdout)
    if result["failed"]:
        raise RuntimeError(f"{result['failed']} requests failed, e.g. {result['failures']}")
    latencies: list[float] = result["latencies"]
    return latencies


def paths(sizes: Sizes, pick: random.Random) -> dict[tuple[str, str], list[str]]:
    n = sizes.http_requests
    return {
        ("list", "deal"): [f"/api/v1/deal?status={pick.choice(dataset.STATUSES)}&amount__gte="
                           f"{pick.randrange(dataset.AMOUNTS)}&sort=-close_date" for _ in range(n)],
        ("list", "company"): [f"/api/v1/company?region={pick.choice(dataset.REGIONS)}"
                              f"&employees__gte={pick.randrange(5000)}&sort=-founded" for _ in range(n)],
        ("get", "deal"): [f"/api/v1/deal/{pick.randint(1, sizes.rows)}" for _ in range(n)],
        ("get", "company"): [f"/api/v1/company/{pick.randint(1, sizes.small_rows)}" for _ in range(n)],
    }


def run(engine: sa.Engine, sizes: Sizes, log_folder: Path | None = None) -> list[Figure]:
    db = engine.dialect.name
    pick = random.Random(5)
    wanted = paths(sizes, pick)
    log = (log_folder or Path("bench/results")) / f"server-{db}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    figures = []
    with server(engine, log) as base:
        load(base, [p for each in wanted.values() for p in each[: CLIENTS * 2]])  # warm-up
        for kind in ("list", "get"):
            big, small = load(base, wanted[kind, "deal"]), load(base, wanted[kind, "company"])
            p95, p95_small = percentile(big, 95) * 1000, percentile(small, 95) * 1000
            what = ("page of 50: status = x, amount ≥ y, sort -close_date (small: region, employees, "
                    "-founded)" if kind == "list" else "GET /api/v1/{entity}/{id}, random ids")
            figures.append(Figure(
                f"HTTP {kind}, {CLIENTS} clients, p95 (large entity vs {sizes.small_rows:,}-record one)", db,
                sizes.rows, p95, p95_small, "ms", f"p95 ≤ {GOAL_MS:.0f} ms", p95 <= GOAL_MS,
                f"{what}; {len(big):,} requests each; p50 {percentile(big, 50) * 1000:.1f} ms "
                f"(small: {percentile(small, 50) * 1000:.1f} ms); one uvicorn worker; load from one Python "
                f"process, {CLIENTS} threads on keep-alive connections"))
    return figures
