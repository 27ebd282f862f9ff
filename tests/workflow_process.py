"""A workflow worker in a process of its own, for tests that kill workers:
`python -m tests.workflow_process DATABASE_URL`.

It builds the services the way the app does (`records_service` over the plugins) and runs
`Worker.run_forever` until SIGTERM (SIGKILL, what the crash tests send, ends it at once).
The lease and back-off come from the environment (SLATECRM_WORKFLOW_LEASE, …, settings.py);
SLATECRM_TEST_WORKFLOW_BATCH and SLATECRM_TEST_WORKFLOW_POLL set the batch and the idle wait.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from slatecrm.platform.services import records_service
from slatecrm.platform.storage.engine import create_engine
from slatecrm.platform.workflows.settings import ExecutionSettings
from slatecrm.platform.workflows.worker import Worker
from slatecrm.plugins.manager import make_plugin_manager

BATCH = "SLATECRM_TEST_WORKFLOW_BATCH"
POLL = "SLATECRM_TEST_WORKFLOW_POLL"


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format=f"[worker {os.getpid()}] %(levelname)s %(name)s: %(message)s")
    engine = create_engine(argv[0])
    records = records_service(engine, make_plugin_manager())
    settings = ExecutionSettings.from_environment(batch=int(os.environ.get(BATCH, "50")),
                                                  poll_seconds=float(os.environ.get(POLL, "0.2")))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker = Worker(engine, records, settings, name=f"test:{os.getpid()}")
    print(f"ready {os.getpid()}", flush=True)
    worker.run_forever(stop)
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
