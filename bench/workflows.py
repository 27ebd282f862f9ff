"""Workflows: what the outbox costs a write, how fast workers run jobs, how soon a job starts.

- **Write cost**: single-record creates and updates through the records service of an entity
  with 5 matching asynchronous workflows (5 on `created`, 5 on `updated`, each an `update`
  action) against the same writes to an identical entity that has none, in alternating
  rounds; p50 per write, goal ≤ 1.2× (the outbox adds one row, its jobs as one JSON text, to
  the write's transaction).
- **Worker throughput**: N records created in bulk, each making one job (an `update` action
  incrementing a counter), run by worker processes (4 on PostgreSQL, 2 on SQLite) started
  for the purpose (`python -m bench.workflows worker URL`); jobs/s from the first run's start
  to the last run's end, read from the run log, with the time the jobs took to move from the
  outbox into the queue (done beforehand, so that they can be held back) added. Goal ≥ 1,000
  jobs/s on PostgreSQL; SQLite reported only.
- **Trigger-to-start latency**: one idle worker (polling every 0.2 s, the default), records
  created one at a time at uneven intervals; each job's `created_at` (the write) to its run's
  `started_at`; p95, goal ≤ 1 s.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform import installer
from slatecrm.platform.services import records_service
from slatecrm.platform.storage import system
from slatecrm.platform.workflows.outbox import fan_out
from slatecrm.plugins.manager import make_plugin_manager

from .common import Sizes, interleaved, median, ms, percentile
from .report import Figure

WRITE_GOAL = 1.2
THROUGHPUT_GOAL = 1_000
LATENCY_GOAL_SECONDS = 1.0
WORKERS = {"postgresql": 4, "sqlite": 2}
#: SQLite's single writer runs far fewer jobs a second: it gets this share of the jobs, so the
#: part stays within minutes.
SQLITE_SHARE = 4
WATCHED = 5
ROOT = Path(__file__).resolve().parent.parent


def _entity(name: str) -> str:
    return textwrap.dedent(f"""\
        kind: entity
        name: {name}
        title_field: name
        fields:
          name: {{type: text, required: true}}
          counter: {{type: integer}}
          score: {{type: integer}}
        """)


def _workflow(name: str, entity: str, trigger: str, values: dict[str, str]) -> str:
    sets = "\n".join(f"      {k}: \"{v}\"" for k, v in values.items())
    return f"kind: workflow\nname: {name}\nentity: {entity}\ntrigger: {{kind: {trigger}}}\nactions:\n" \
           f"  - kind: update\n    set:\n{sets}\n"


def pack_files() -> dict[str, str]:
    """`watched`: 5 workflows on created and 5 on updated; `plain`: none; `job_item` and
    `ping`: one workflow on created incrementing the counter."""
    files = {f"entities/{e}.yaml": _entity(e) for e in ("watched", "plain", "job_item", "ping")}
    for i in range(WATCHED):
        files[f"workflows/on_create_{i}.yaml"] = _workflow(f"on_create_{i}", "watched", "created",
                                                           {"score": f"{i}"})
        files[f"workflows/on_update_{i}.yaml"] = _workflow(f"on_update_{i}", "watched", "updated",
                                                           {"score": f"{i}"})
    files["workflows/count_job.yaml"] = _workflow("count_job", "job_item", "created",
                                                  {"counter": "counter + 1"})
    files["workflows/count_ping.yaml"] = _workflow("count_ping", "ping", "created",
                                                   {"counter": "counter + 1"})
    return files


def install(engine: sa.Engine, registry: FieldTypeRegistry) -> None:
    installer.create_system_tables(engine)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "benchflows"
        folder.mkdir()
        (folder / "pack.yaml").write_text('{"name": "benchflows", "namespace": "benchflows", '
                                          '"version": "1.0.0", "title": "Bench workflows"}')
        for rel, text in pack_files().items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text)
        plan = installer.plan_install(engine, installer.load_packs([str(folder)], registry), registry)
        installer.install(engine, plan, author="bench")


def run(engine: sa.Engine, registry: FieldTypeRegistry, sizes: Sizes) -> list[Figure]:
    install(engine, registry)
    records = records_service(engine, make_plugin_manager())
    figures = write_cost(engine, records, sizes)
    with engine.begin() as conn:  # the write figures' jobs are not the workers' to run
        conn.execute(system.workflow_jobs.delete())
        conn.execute(system.workflow_events.delete())
    url = engine.url.render_as_string(hide_password=False)
    workers = Workers(url)
    try:
        figures.append(throughput(engine, records, sizes, workers))
        figures.append(latency(engine, records, sizes, workers))
    finally:
        workers.stop()
    return figures


# --- write cost ------------------------------------------------------------------------------------
def write_cost(engine: sa.Engine, records: Any, sizes: Sizes) -> list[Figure]:
    db = engine.dialect.name
    count = sizes.workflow_writes
    made: dict[str, list[tuple[int, int]]] = {"watched": [], "plain": []}
    cpu: dict[str, list[float]] = {"watched": [], "plain": []}

    def on_cpu(entity: str, write: Callable[[int], object]) -> Callable[[int], object]:
        """The write, its process CPU time noted (a busy machine's wall clock counts waits)."""
        def one(i: int) -> object:
            used = time.process_time()
            done = write(i)
            cpu[entity].append(time.process_time() - used)
            return done
        return one

    def create(entity: str) -> Callable[[int], object]:
        def one(i: int) -> object:
            record = records.create(entity, {"name": f"{entity} {i}", "counter": 0, "score": 0})
            made[entity].append((record.id, record.version))
            return record
        return on_cpu(entity, one)

    figures = []

    def figure(label: str, a: list[float], b: list[float]) -> None:
        measured, baseline = ms(median(a)), ms(median(b))
        cpu_a, cpu_b = ms(median(cpu["watched"])), ms(median(cpu["plain"]))
        figures.append(Figure(label, db, count, measured, baseline, "ms", f"≤ {WRITE_GOAL}×",
                              measured <= WRITE_GOAL * baseline,
                              f"p50 of {len(a)} single-record writes each, alternating rounds; baseline: the "
                              f"same writes to an identical entity with no workflow (p95 "
                              f"{ms(percentile(a, 95)):.2f} vs {ms(percentile(b, 95)):.2f} ms; the process's "
                              f"CPU time p50 {cpu_a:.2f} vs {cpu_b:.2f} ms, {cpu_a / cpu_b:.2f}×)"))
        for side in cpu.values():
            side.clear()

    a, b = interleaved(create("watched"), create("plain"), count)
    figure(f"create with {WATCHED} matching workflows (records service)", a, b)
    targets = {e: itertools.cycle(range(len(made[e]))) for e in made}
    versions = {e: dict(made[e]) for e in made}
    ids = {e: [i for i, _ in made[e]] for e in made}
    scores = itertools.count(100)

    def update(entity: str) -> Callable[[int], object]:
        def one(_: int) -> object:
            record_id = ids[entity][next(targets[entity])]
            done = records.update(entity, record_id, {"score": next(scores)},
                                  version=versions[entity][record_id])
            versions[entity][record_id] = done.version
            return done
        return on_cpu(entity, one)

    a, b = interleaved(update("watched"), update("plain"), count)
    figure(f"update with {WATCHED} matching workflows (records service)", a, b)
    return figures


# --- workers ---------------------------------------------------------------------------------------
class Workers:
    """Worker processes of this bench (`python -m bench.workflows worker URL`)."""

    def __init__(self, url: str):
        self.url = url
        self.alive: list[subprocess.Popen[bytes]] = []

    def start(self, count: int, batch: int = 50) -> None:
        env = {**os.environ, "SLATECRM_BENCH_WORKER_BATCH": str(batch)}
        for _ in range(count):
            self.alive.append(subprocess.Popen([sys.executable, "-m", "bench.workflows", "worker", self.url],
                                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL))

    def stop(self, keep: int = 0) -> None:
        leaving, self.alive = self.alive[keep:], self.alive[:keep]
        for process in leaving:
            process.send_signal(signal.SIGTERM)
        for process in leaving:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def check(self) -> None:
        dead = [p.returncode for p in self.alive if p.poll() is not None]
        if dead:
            raise RuntimeError(f"a bench worker process ended (exit codes {dead})")


def _count(engine: sa.Engine, query: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def _open_jobs(engine: sa.Engine, workflow: str) -> int:
    jobs = system.workflow_jobs
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(
            jobs.c.workflow == workflow, jobs.c.status.in_(("pending", "running")))).scalar_one())


def _wait(condition: Callable[[], bool], seconds: float, what: str, workers: Workers) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        workers.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench workflows: timed out waiting for {what}")
        time.sleep(0.1)


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes of this machine, so far (0 for one gone)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _backends(engine: sa.Engine) -> list[int]:
    """The PostgreSQL server processes of the database's other connections (the workers')."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as conn:
        return [int(p) for p in conn.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).scalars()]


def throughput(engine: sa.Engine, records: Any, sizes: Sizes, workers: Workers) -> Figure:
    db = engine.dialect.name
    count = sizes.workflow_jobs if db == "postgresql" else max(1, sizes.workflow_jobs // SQLITE_SHARE)
    for start in range(0, count, 1_000):
        records.create_many("job_item", [{"name": f"job {i}", "counter": 0, "score": 0}
                                         for i in range(start, min(count, start + 1_000))])
    jobs = system.workflow_jobs
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    # The outbox's events moved into the queue here, as a worker's round does first, and
    # timed: that part of a worker's work is added to the measured seconds (`moving`).
    with engine.connect() as conn:
        moving = time.perf_counter()
        moved = 0
        while True:
            with conn.begin():
                made = fan_out(conn)
            if not made:
                break
            moved += made
        moving = time.perf_counter() - moving
    with engine.begin() as conn:  # held back until every worker is up (their start is not measured)
        conn.execute(jobs.update().where(jobs.c.workflow == "count_job").values(due_at=later))
    processes = WORKERS[db]
    engine.dispose()  # this process's connections are not the workers'
    workers.start(processes)
    seen = system.workflow_workers
    _wait(lambda: _count(engine, sa.select(sa.func.count()).select_from(seen)) >= processes, 120,
          "the workers up", workers)
    pids, backends = [p.pid for p in workers.alive], _backends(engine)
    cpu_before, backend_before = _cpu_seconds(pids), _cpu_seconds(backends)
    with engine.begin() as conn:
        conn.execute(jobs.update().where(jobs.c.workflow == "count_job")
                     .values(due_at=dt.datetime.now(dt.UTC)))
    _wait(lambda: _open_jobs(engine, "count_job") == 0, 60 + count / 20, f"{count:,} jobs run", workers)
    cpu_workers, cpu_backends = _cpu_seconds(pids) - cpu_before, _cpu_seconds(backends) - backend_before
    cpu = cpu_workers + cpu_backends
    runs = system.workflow_runs
    with engine.connect() as conn:
        first, last, done, runs_made = conn.execute(
            sa.select(sa.func.min(runs.c.started_at), sa.func.max(runs.c.finished_at),
                      sa.func.count().filter(runs.c.status == "done"), sa.func.count())
            .where(runs.c.workflow == "count_job")).one()
        table = records.holder.current().tables["job_item"]
        counted = conn.execute(sa.select(sa.func.count()).where(table.c.counter == 1)).scalar_one()
    first, last = _aware(first), _aware(last)
    running = max((last - first).total_seconds(), 1e-6)
    seconds = running + moving
    rate = done / seconds
    goal = THROUGHPUT_GOAL if db == "postgresql" else None
    where = (f"the worker processes ({ms(cpu_workers / max(done, 1)):.2f} ms) and their PostgreSQL server "
             f"processes ({ms(cpu_backends / max(done, 1)):.2f} ms)") if db == "postgresql" else \
        "the worker processes (SQLite's work included)"
    per_job = cpu / max(done, 1)
    cores = os.cpu_count() or 1
    return Figure(f"workflow jobs run by {processes} worker processes", db, count, rate, 0, "jobs/s",
                  f"≥ {goal:,} jobs/s" if goal else "— (reported)", rate >= goal if goal else None,
                  f"{count:,} jobs (each an `update` action: counter + 1) made by bulk creates, run by "
                  f"{processes} worker processes with batches of 50; {done:,} done runs of {runs_made:,}, "
                  f"{counted:,} records counted once; {running:.2f} s from the first run's start to the last "
                  f"run's end, plus {moving:.2f} s moving the {moved:,} jobs from the outbox into the queue "
                  f"beforehand (a worker's work too). CPU: {ms(per_job):.2f} ms a job in {where} "
                  f"({cpu:.1f} s in all), so at most {cores / max(per_job, 1e-9):,.0f} jobs/s "
                  f"if the machine's {cores} cores ran nothing else")


def latency(engine: sa.Engine, records: Any, sizes: Sizes, workers: Workers) -> Figure:
    db = engine.dialect.name
    workers.stop(keep=1)  # one idle worker, polling
    pick = random.Random(11)
    jobs, runs = system.workflow_jobs, system.workflow_runs
    samples: list[float] = []
    for i in range(sizes.workflow_pings):
        time.sleep(pick.uniform(0.05, 0.4))  # uneven, so the writes fall anywhere in a poll interval
        record = records.create("ping", {"name": f"ping {i}", "counter": 0, "score": 0})
        record_id: int = record.id
        _wait(functools.partial(_ran, engine, record_id), 30, "a ping's job", workers)
        with engine.connect() as conn:
            created, started = conn.execute(
                sa.select(jobs.c.created_at, runs.c.started_at).select_from(
                    jobs.join(runs, runs.c.job_id == jobs.c.id))
                .where(jobs.c.workflow == "count_ping", jobs.c.record_id == record_id)).one()
        samples.append((_aware(started) - _aware(created)).total_seconds())
    p95 = percentile(samples, 95)
    return Figure("workflow trigger-to-start latency p95, one idle worker", db, len(samples), ms(p95), 0,
                  "ms",
                  f"≤ {LATENCY_GOAL_SECONDS * 1000:,.0f} ms", p95 <= LATENCY_GOAL_SECONDS,
                  f"{len(samples)} records created one at a time, 0.05–0.4 s apart; the job's created_at "
                  f"(the write) to its run's started_at; one worker polling every 0.2 s (the default); "
                  f"p50 {ms(median(samples)):.0f} ms, max {ms(max(samples)):.0f} ms")


def _ran(engine: sa.Engine, record_id: int) -> bool:
    """Whether the ping's job has started (its run is logged)."""
    runs = system.workflow_runs
    with engine.connect() as conn:
        started = conn.execute(sa.select(runs.c.id).where(runs.c.workflow == "count_ping",
                                                          runs.c.record_id == record_id).limit(1)).first()
    return started is not None


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


# --- the worker process ----------------------------------------------------------------------------
def worker_main(url: str) -> int:
    """A worker until SIGTERM, built the way the app builds its services."""
    from slatecrm.platform.storage.engine import create_engine
    from slatecrm.platform.workflows.settings import ExecutionSettings
    from slatecrm.platform.workflows.worker import Worker

    engine = create_engine(url)
    records = records_service(engine, make_plugin_manager())
    batch = int(os.environ.get("SLATECRM_BENCH_WORKER_BATCH", "50"))
    settings = ExecutionSettings.from_environment(batch=batch)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    Worker(engine, records, settings, name=f"bench:{os.getpid()}").run_forever(stop)
    engine.dispose()
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["worker"] or len(sys.argv) != 3:
        raise SystemExit("usage: python -m bench.workflows worker DATABASE_URL")
    sys.exit(worker_main(sys.argv[2]))
