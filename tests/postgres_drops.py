"""What becomes of the tests' PostgreSQL databases: emptied for the next test, or dropped, off the
tests' path.

`DROP DATABASE` forces a checkpoint of the whole server: seconds on a busy machine, most of a
PostgreSQL test's own time, and with one drop after another a run's two hundred drops fell
behind its tests. Two things make them few and cheap:

- A test's database is mostly not dropped but *recycled*: once the test is over, one thread
  per test process ends the connections to it and drops every schema in it (the tables,
  indexes, sequences, types and functions the test made, in one catalog transaction, no
  checkpoint), creates `public` again as a new database has it, and resets database-level
  settings. The database is then as `CREATE DATABASE` makes it, and the next test that asks
  for an empty database gets it (`take`) instead of a new one. A test never sees another
  test's data: a database is handed out only after `_empty` has checked that nothing but the
  system schemas and an empty `public` is left.
- What the pool cannot hold (more than `CLEAN_AT_MOST` waiting) or could not be emptied is
  dropped `DROPS_AT_ONCE` at a time, concurrently, so that one checkpoint serves them all;
  the last ones, the pool and the templates when the session ends (`wait`).

The queue is bounded: when the thread falls behind, a test's teardown waits for room rather
than letting databases pile up on the server. The session waits for the last job and drop,
so no database outlives its run.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

PENDING_AT_MOST = 16
#: Emptied databases kept for the next tests; beyond this, a used database is dropped.
CLEAN_AT_MOST = 4

#: Databases to drop are gathered and dropped this many at a time (see `_drop_together`); the
#: last ones when the session ends, with the emptied ones and the templates.
DROPS_AT_ONCE = 8

#: Names starting with pg_ are the system's (no user can create one).
_USER_SCHEMAS = "SELECT nspname FROM pg_namespace WHERE nspname <> 'information_schema' AND nspname !~ '^pg_'"
_LEFT_OVER = ("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
              "WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'")


class BackgroundDrops:
    """Empties or drops PostgreSQL databases in a background thread, in the order handed over."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.failures: list[str] = []
        self._queue: queue.Queue[tuple[str, bool]] = queue.Queue(maxsize=PENDING_AT_MOST)
        self._clean: list[str] = []
        self._at_end: list[str] = []
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def drop(self, name: str) -> None:
        """Drop the database `name` (its connections are ended: WITH (FORCE)), with the next
        ones to drop or at the end of the session."""
        self._put(name, recycle=False)

    def recycle(self, name: str) -> None:
        """The test that used `name` is over: empty it for another test (or drop it)."""
        self._put(name, recycle=True)

    def take(self) -> str | None:
        """The name of an emptied database, now the caller's, or None when none is waiting."""
        with self._lock:
            return self._clean.pop() if self._clean else None

    def drop_at_end(self, name: str) -> None:
        """Drop the database `name` when the session ends (`wait`), with the others left then."""
        with self._lock:
            self._at_end.append(name)

    def wait(self) -> list[str]:
        """Block until every database handed over is dropped, the emptied ones too; what could
        not be dropped, and why."""
        self._queue.join()
        with self._lock:
            leftovers, self._clean, self._at_end = [*self._clean, *self._at_end], [], []
        self._drop_together(leftovers)
        return self.failures

    def _put(self, name: str, recycle: bool) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="drop test databases", daemon=True)
                self._thread.start()
        self._queue.put((name, recycle))

    def _run(self) -> None:
        admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        while True:
            name, recycle = self._queue.get()
            try:
                with self._lock:
                    keep = recycle and len(self._clean) < CLEAN_AT_MOST
                if keep and self._emptied(admin, name):
                    with self._lock:
                        self._clean.append(name)
                else:
                    with self._lock:
                        self._at_end.append(name)
                        batch = self._at_end if len(self._at_end) >= DROPS_AT_ONCE else []
                        if batch:
                            self._at_end = []
                    self._drop_together(batch)
            finally:
                self._queue.task_done()

    def _drop_together(self, names: list[str]) -> None:
        """Drop `names` at the same time, one connection each: the server serves drops that ask
        for a checkpoint together with one checkpoint, where one drop after another waits for
        one each (measured here, six drops on the loaded machine: 12 to 31 s one after
        another, 0.9 to 1.7 s together)."""
        if not names:
            return
        admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="drop test databases") as pool:
            self.failures.extend(problem for problem in pool.map(lambda name: _drop(admin, name), names)
                                 if problem)

    def _emptied(self, admin: sa.Engine, name: str) -> bool:
        try:
            return self._empty(admin, name)
        except Exception:  # anything unexpected: the database is dropped instead
            return False

    def _empty(self, admin: sa.Engine, name: str) -> bool:
        """Make `name` what a new database is; False when it is gone or cannot be emptied (then
        it is dropped instead)."""
        with admin.connect() as conn:
            if not conn.exec_driver_sql("SELECT 1 FROM pg_database WHERE datname = %(n)s",
                                        {"n": name}).first():
                return False
            # Whatever the test left connected (a server, a pool) would hold locks on its tables.
            conn.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = %(n)s AND pid <> pg_backend_pid()", {"n": name})
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" RESET ALL')
        url = sa.engine.make_url(self.admin_url).set(database=name)
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
                for (schema,) in conn.exec_driver_sql(_USER_SCHEMAS).all():
                    conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
                conn.exec_driver_sql("CREATE SCHEMA public AUTHORIZATION pg_database_owner")
                conn.exec_driver_sql("GRANT USAGE ON SCHEMA public TO PUBLIC")
                conn.exec_driver_sql("COMMENT ON SCHEMA public IS 'standard public schema'")
                conn.exec_driver_sql("SELECT lo_unlink(oid) FROM pg_largeobject_metadata")
                left = conn.exec_driver_sql(_LEFT_OVER).scalar_one()
                if left:
                    raise RuntimeError(f"{left} relations left after emptying {name}")
        finally:
            engine.dispose()
        return True


def _drop(admin: sa.Engine, name: str) -> str | None:
    """Drop `name` (its connections are ended); what went wrong, reported at the end of the session."""
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception as error:  # never lost: the session fails on it
        return f"{name}: {error}"
    return None
