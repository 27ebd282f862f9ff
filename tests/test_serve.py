"""`slatecrm serve --workers 2`: a metamodel change made through one worker is live in all."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from slatecrm.platform import installer
from slatecrm.platform.storage.engine import create_engine

from .defaults import field_types


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fresh_get(url: str) -> dict[str, Any]:
    """Each request on its own connection, so that any worker may take it."""
    with httpx.Client(timeout=10) as http:
        response = http.get(url)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data


def test_a_change_through_one_worker_is_live_in_all(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    engine = create_engine(url)
    registry = field_types()
    installer.create_system_tables(engine)
    installer.install(engine, installer.plan_install(engine, installer.load_packs(["crm-core"], registry),
                                                     registry), author="test")
    engine.dispose()
    port = free_port()
    base = f"http://127.0.0.1:{port}/api/v1"
    script = Path(sys.executable).parent / "slatecrm"
    command = [str(script), "serve", "--database", url, "--port", str(port), "--workers", "2"]
    log = (tmp_path / "serve.log").open("wb")  # a file, not a pipe nobody reads (it could fill and block)
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                fresh_get(f"{base}/meta")
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.2)
        workers: set[int] = set()
        while len(workers) < 2 and time.monotonic() < deadline + 30:  # the second may still be starting
            with ThreadPoolExecutor(8) as pool:
                workers |= {m["worker"] for m in pool.map(fresh_get, [f"{base}/meta"] * 64)}
        assert len(workers) == 2, workers
        entity = {"fields": {"name": {"type": "text"}}}
        with httpx.Client(timeout=10) as http:
            dry = http.put(f"{base}/admin/entities/thing", json=entity).json()
            done = http.put(f"{base}/admin/entities/thing", json=entity,
                            params={"confirm": dry["base_revision"]})
            assert done.status_code == 200, done.text
        time.sleep(1.0)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(fresh_get, [f"{base}/meta"] * 64))
        assert {a["worker"] for a in answers} == workers
        assert {a["revision"] for a in answers} == {2}
        with httpx.Client(timeout=10) as http:
            for _ in range(10):
                assert http.get(f"{base}/thing").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
