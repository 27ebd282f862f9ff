"""Dropping the tests' PostgreSQL databases off the tests' path.

`DROP DATABASE` forces a checkpoint of the whole server: seconds on a busy machine, most of a
PostgreSQL test's own time. A test's database is dropped once the test is over, so nothing
waits for it: one thread per test process drops them in order while the next tests run, and
the session waits for the last drop before it ends (`wait`), so no database outlives its run.
The queue is bounded: when drops fall behind, a test's teardown waits for room rather than
letting databases pile up on the server.
"""

from __future__ import annotations

import queue
import threading

import sqlalchemy as sa

PENDING_AT_MOST = 16


class BackgroundDrops:
    """Drops PostgreSQL databases in a background thread, in the order they were handed over."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.failures: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue(maxsize=PENDING_AT_MOST)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def drop(self, name: str) -> None:
        """Drop the database `name` soon (its connections are ended: WITH (FORCE))."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="drop test databases", daemon=True)
                self._thread.start()
        self._queue.put(name)

    def wait(self) -> list[str]:
        """Block until every database handed over is dropped; what could not be dropped, and why."""
        self._queue.join()
        return self.failures

    def _run(self) -> None:
        admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        while True:
            name = self._queue.get()
            try:
                with admin.connect() as conn:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as error:  # reported at the end of the session, never lost
                self.failures.append(f"{name}: {error}")
            finally:
                self._queue.task_done()
