"""`slatecrm serve --workers 2`: a metamodel change made through one worker is live in all.

Nothing here depends on how busy the machine is: the test waits for conditions (each
worker's start in the server's log, each worker's pid in an answer, each worker answering
the new revision), and the generous bound on each wait only turns a hung server into a
failure with the server's log instead of a stuck run. It is not a timing assertion.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry

from .defaults import bearer
from .pack_templates import PackTemplates

WORKERS = 2
HUNG = 300.0  # seconds: a failure detector for a server that never gets there, far above any busy machine
REQUEST_TIMEOUT = 120.0
STARTED = re.compile(r"Started server process \[(\d+)\]")
READY = "Application startup complete."


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


#: The API token every request of the test sends (made before the server starts).
AUTH: dict[str, str] = {}


def fresh_get(url: str) -> dict[str, Any]:
    """Each request on its own connection, so that any worker may take it."""
    with httpx.Client(timeout=REQUEST_TIMEOUT, headers=AUTH) as http:
        response = http.get(url)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data


class Server:
    """`slatecrm serve` in a subprocess, its output in a file (a pipe nobody reads could fill and block)."""

    def __init__(self, url: str, folder: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/api/v1"
        self.log_path = folder / "serve.log"
        self.log = self.log_path.open("wb")
        command = [str(Path(sys.executable).parent / "slatecrm"), "serve", "--database", url,
                   "--port", str(self.port), "--workers", str(WORKERS)]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                        env=dict(os.environ))

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, what: str, condition: Callable[[], bool]) -> None:
        """Poll `condition` until it holds; fail with the server's log if the server died or hung."""
        deadline = time.monotonic() + HUNG
        while not condition():
            assert self.process.poll() is None, f"the server exited before {what}:\n{self.output()}"
            assert time.monotonic() < deadline, f"no {what} after {HUNG:.0f} s:\n{self.output()}"
            time.sleep(0.1)

    def worker_pids(self) -> set[int]:
        return {int(pid) for pid in STARTED.findall(self.output())}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=HUNG)
        finally:
            self.log.close()


def meta_from_many(base: str) -> list[dict[str, Any]]:
    """A burst of concurrent fresh connections, which the workers share between them."""
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(fresh_get, [f"{base}/meta"] * 32))


def test_a_change_through_one_worker_is_live_in_all(
        tmp_path: Path, registry: FieldTypeRegistry, pack_templates: PackTemplates) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    engine = sa.create_engine(url)
    pack_templates.copy_to(engine, registry, "crm-core")
    AUTH.update(bearer(engine))
    engine.dispose()
    server = Server(url, tmp_path)
    try:
        # Every worker has started and says it is ready...
        server.wait_for(f"{WORKERS} ready workers", lambda: len(server.worker_pids()) == WORKERS
                        and server.output().count(READY) == WORKERS)
        workers = server.worker_pids()
        # ...and has answered, on revision 1.
        answered: dict[int, set[int]] = {}

        def everyone_answered(revision: int) -> Callable[[], bool]:
            def check() -> bool:
                for meta in meta_from_many(server.base):
                    answered.setdefault(meta["worker"], set()).add(meta["revision"])
                return all(revision in answered.get(pid, set()) for pid in workers)
            return check

        server.wait_for("answer from each worker", everyone_answered(1))
        assert set(answered) == workers, (answered, workers)  # no one else answers
        entity = {"fields": {"name": {"type": "text"}}}
        with httpx.Client(timeout=REQUEST_TIMEOUT, headers=AUTH) as http:
            dry = http.put(f"{server.base}/admin/entities/thing", json=entity).json()
            done = http.put(f"{server.base}/admin/entities/thing", json=entity,
                            params={"confirm": dry["base_revision"]})
            assert done.status_code == 200, done.text
        # The change is live in every worker (each notices the revision on its own)...
        answered.clear()
        server.wait_for("revision 2 from each worker", everyone_answered(2))
        assert set(answered) == workers, (answered, workers)
        # ...and once a worker has seen it, it never answers the old revision again.
        after = meta_from_many(server.base)
        assert {(a["worker"], a["revision"]) for a in after} <= {(pid, 2) for pid in workers}
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _: httpx.get(f"{server.base}/thing", timeout=REQUEST_TIMEOUT,
                                                         headers=AUTH).status_code, range(16)))
        assert statuses == [200] * 16
    finally:
        server.stop()
