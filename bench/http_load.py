"""HTTP list, get and search under 8 concurrent clients, against a hand-written baseline.

Two servers run side by side on the bench database, each one uvicorn worker with the same
settings: `slatecrm serve`, and bench/baseline_app.py, the same list and get written by
hand for this schema with SQLAlchemy Core and Starlette. Load comes from `wrk` (C, one
process, event-driven; bench/wrk_paths.lua) when it is installed, else from the Python
load generator (bench/loadgen.py); bench/findings.md says why wrk is preferred. Both keep
8 connections busy in a closed loop for a fixed time.

The list is measured as a client gets it by default, without a count (docs/api.md,
"Counting"), against the hand-written app answering the same JSON; the same list with
`count=true` (the capped count on a full first page, on both sides) is reported beside it
without a goal.

The two servers are measured in alternating rounds (a warm-up round each, then
`--http-rounds` rounds each), so other load on a shared machine falls on both alike; a figure is the
median over the rounds of each round's percentile. Search has no hand-written twin (the
query depends on the full-text index the platform builds): it is judged by its absolute goal.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import sqlalchemy as sa

from . import dataset
from .common import Sizes, authorization, percentile
from .report import Figure

CLIENTS = 8
#: p95 goals in ms (issue 11), and the web layer's cost against the hand-written app; None:
#: reported without a goal.
COUNTED = "list with count=true"
GOALS_MS: dict[str, float | None] = {"list": 50.0, COUNTED: None, "get": 30.0, "search": 100.0,
                                     "prefix search": 100.0}
WEB_GOAL = 1.5
PACKAGE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def server(command: list[str], port: int, log: Path, ready_path: str,
           headers: dict[str, str] | None = None) -> Iterator[str]:
    """The server `command` starts, once it answers `ready_path`; stopped on leaving."""
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=PACKAGE.parent,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(urllib.request.Request(base + ready_path, headers=headers or {}),
                                            timeout=5):
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


def slatecrm(engine: sa.Engine, log: Path, headers: dict[str, str]) -> AbstractContextManager[str]:
    port = free_port()
    url = engine.url.render_as_string(hide_password=False)
    command = [sys.executable, "-m", "slatecrm.platform.cli", "serve", "--database", url, "--port", str(port)]
    return server(command, port, log, "/api/v1/meta", headers)


def baseline(engine: sa.Engine, log: Path) -> AbstractContextManager[str]:
    port = free_port()
    url = engine.url.render_as_string(hide_password=False)
    return server([sys.executable, "-m", "bench.baseline_app", url, str(port)], port, log, "/api/v1/deal/1")


@dataclass(frozen=True)
class Round:
    """One load run against one server: percentiles in seconds."""

    requests: int
    seconds: float
    p50: float
    p95: float
    #: Requests that got no answer in time (wrk's 30 s timeout) or lost their connection.
    lost: int = 0


#: The environment variable bench/loadgen.py reads its requests' Authorization header from.
AUTHORIZATION_VARIABLE = "BENCH_AUTHORIZATION"


def wrk_round(base: str, paths: list[str], seconds: float, headers: dict[str, str]) -> Round:
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as listing:
        listing.write("\n".join(paths) + "\n")
        listing.flush()
        done = subprocess.run(
            ["wrk", "-t2", f"-c{CLIENTS}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
             *[arg for k, v in headers.items() for arg in ("-H", f"{k}: {v}")],
             "-s", str(PACKAGE / "wrk_paths.lua"), base, "--", listing.name],
            capture_output=True, text=True, check=True)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result: {done.stdout[-500:]} {done.stderr[-500:]}")
    result = json.loads(line.removeprefix("BENCH_JSON "))
    if result["status_errors"] or not result["requests"]:
        raise RuntimeError(f"wrk against {base}{paths[0]}: {result}")
    return Round(result["requests"], result["duration_us"] / 1e6, result["p50_us"] / 1e6,
                 result["p95_us"] / 1e6, result["socket_errors"])


def python_round(base: str, paths: list[str], seconds: float, headers: dict[str, str]) -> Round:
    done = subprocess.run([sys.executable, "-m", "bench.loadgen", base, str(CLIENTS), str(seconds), *paths],
                          capture_output=True, text=True, check=True, cwd=PACKAGE.parent,
                          env={**os.environ, AUTHORIZATION_VARIABLE: headers.get("Authorization", "")})
    result = json.loads(done.stdout)
    if result["failed"]:
        raise RuntimeError(f"{result['failed']} requests failed, e.g. {result['failures']}")
    latencies: list[float] = result["latencies"]
    return Round(len(latencies), result["elapsed"], percentile(latencies, 50), percentile(latencies, 95))


def loadgen(choice: str) -> str:
    """`wrk` when asked for or (`auto`) installed, else `python`."""
    if choice == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if choice == "wrk" and not shutil.which("wrk"):
        raise SystemExit("--loadgen wrk: wrk is not installed (apt-get install wrk)")
    return choice


def workloads(sizes: Sizes, pick: random.Random) -> dict[str, list[str]]:
    n = 2_000
    words = [*dataset.PRODUCTS, *dataset.KINDS]
    # filter + sort over a date with blanks (open deals have none), both directions
    lists = [f"/api/v1/deal?status={pick.choice(dataset.STATUSES)}&amount__gte="
             f"{pick.randrange(dataset.AMOUNTS // 2)}&sort={pick.choice(('-', ''))}close_date"
             for _ in range(n)]
    return {
        "list": lists,
        COUNTED: [f"{path}&count=true" for path in lists],
        "get": [f"/api/v1/deal/{pick.randint(1, sizes.rows)}" for _ in range(n)],
        "search": [f"/api/v1/deal?q={pick.choice(words)}" for _ in range(n)],
        "prefix search": [f"/api/v1/deal?q={pick.choice(words)[:3]}" for _ in range(n)],
    }


def same_shape(slate: str, hand: str, path: str, headers: dict[str, str]) -> None:
    """The baseline answers what SlateCRM answers (the same keys at both levels), or the
    comparison would be of different work."""
    def keys(base: str) -> tuple[list[str], list[str]]:
        asked = urllib.request.Request(base + path, headers=headers)
        with urllib.request.urlopen(asked, timeout=30) as response:
            body = json.loads(response.read())
        first = (body["data"] or [{}])[0] if "data" in body else body
        # `count_estimate` is there only when the count's time budget cut it (docs/api.md).
        return sorted(set(body) - {"count_estimate"}), sorted(first)
    if keys(slate) != keys(hand):
        raise RuntimeError(f"the baseline's JSON differs from SlateCRM's for {path}: "
                           f"{keys(slate)} vs {keys(hand)}")


def run(engine: sa.Engine, sizes: Sizes, log_folder: Path | None = None, choice: str = "auto"
        ) -> list[Figure]:
    db = engine.dialect.name
    tool = loadgen(choice)
    # Every request carries an administrator's API token (to both servers: the same bytes).
    auth = authorization(engine)
    measure = partial(wrk_round if tool == "wrk" else python_round, headers=auth)
    seconds = sizes.http_seconds
    warm_up = min(1.0, seconds)
    wanted = workloads(sizes, random.Random(5))
    folder = log_folder or Path("bench/results")
    folder.mkdir(parents=True, exist_ok=True)
    figures = []
    with slatecrm(engine, folder / f"server-{db}.log", auth) as slate, \
            baseline(engine, folder / f"baseline-{db}.log") as hand:
        for path in (wanted["list"][0], wanted[COUNTED][0], wanted["get"][0]):
            same_shape(slate, hand, path, auth)
        for kind in ("list", COUNTED, "get"):
            paths = wanted[kind]
            measure(slate, paths, warm_up)
            measure(hand, paths, warm_up)
            ours: list[Round] = []
            theirs: list[Round] = []
            for r in range(sizes.http_rounds):
                shifted = paths[r * 97:] + paths[:r * 97]
                ours.append(measure(slate, shifted, seconds))
                theirs.append(measure(hand, shifted, seconds))
            figures += _figures(kind, db, sizes, tool, ours, theirs)
        for kind in ("search", "prefix search"):
            measure(slate, wanted[kind], warm_up)
            ours = [measure(slate, wanted[kind], seconds) for _ in range(sizes.http_rounds)]
            figures += _figures(kind, db, sizes, tool, ours, [])
    return figures


def _median(rounds: list[Round], attribute: str) -> float:
    return float(statistics.median(getattr(r, attribute) for r in rounds)) * 1000


def _figures(kind: str, db: str, sizes: Sizes, tool: str, ours: list[Round], theirs: list[Round]
             ) -> list[Figure]:
    p95, p50 = _median(ours, "p95"), _median(ours, "p50")
    rate = sum(r.requests for r in ours) / sum(r.seconds for r in ours)
    listed = ("page of 50: status = x, amount ≥ y, sort by close date (blanks: open deals), "
              "either direction")
    what = {"list": f"{listed}; no count (what a client gets by default)",
            COUNTED: f"{listed}; with the capped count (2,000) a full first page runs, within "
                     f"SlateCRM's count budget",
            "get": "GET /api/v1/deal/{id}, random ids",
            "search": "GET /api/v1/deal?q=<word>, a word of the deals' names",
            "prefix search": "GET /api/v1/deal?q=<first 3 letters of a word>"}[kind]
    load = (f"{CLIENTS} connections from {tool}, closed loop, {len(ours)} rounds of {sizes.http_seconds:g} s"
            + (" per side, alternating" if theirs else ""))
    goal = GOALS_MS[kind]
    lost = sum(r.lost for r in ours)
    if lost:
        load += f"; {lost} requests got no answer within 30 s" + (" (counted as failing the goal)"
                                                                   if goal is not None else "")
    label = f"HTTP {kind}, {CLIENTS} clients, p95 (SlateCRM" + (" vs hand-written app)" if theirs else ")")
    out = [Figure(label, db, sizes.rows, p95, _median(theirs, "p95") if theirs else 0.0, "ms",
                  f"p95 ≤ {goal:.0f} ms" if goal is not None else "— (reported)",
                  (p95 <= goal and not lost) if goal is not None else None,
                  f"{what}; p50 {p50:.1f} ms, {rate:,.0f} requests/s"
                  + (f" (hand-written: p50 {_median(theirs, 'p50'):.1f} ms, "
                     f"{sum(r.requests for r in theirs) / sum(r.seconds for r in theirs):,.0f} requests/s)"
                     if theirs else "") + f"; one uvicorn worker each; {load}")]
    if theirs and goal is not None:
        web = p50 / _median(theirs, "p50")
        out.append(Figure(f"HTTP {kind}: web layer's cost, p50 (SlateCRM vs hand-written app)", db,
                          sizes.rows, p50, _median(theirs, "p50"), "ms", f"≤ {WEB_GOAL}×", web <= WEB_GOAL,
                          "the same requests, the same JSON; the hand-written Starlette app runs the same "
                          "query with SQLAlchemy Core (bench/baseline_app.py)"))
    return out
