"""The Python load generator, run as its own process:
`python -m bench.loadgen URL CLIENTS SECONDS PATH...`.

The fallback when `wrk` is not installed (bench/wrk.py). Each of CLIENTS threads keeps one
HTTP/1.1 connection open and sends the paths one after another, the next when the last
answered (a closed loop), until SECONDS have passed. Prints one JSON object: the latency
of every request, in seconds. It shares the machine's cores with the server and its GIL
with itself, so its latencies are higher than the server's own (bench/findings.md).
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import time
from urllib.parse import urlsplit

#: The Authorization header bench/http_load.py gives (an API token), if any.
HEADERS = {"Authorization": os.environ["BENCH_AUTHORIZATION"]} if os.environ.get("BENCH_AUTHORIZATION") \
    else {}


def client(host: str, port: int, paths: list[str], deadline: float, out: list[float],
           failures: list[str]) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=60)
    i = 0
    while time.perf_counter() < deadline:
        path = paths[i % len(paths)]
        i += 1
        started = time.perf_counter()
        conn.request("GET", path, headers=HEADERS)
        response = conn.getresponse()
        body = response.read()
        out.append(time.perf_counter() - started)
        if response.status != 200:
            failures.append(f"{path}: {response.status} {body[:200]!r}")
    conn.close()


def main(argv: list[str]) -> int:
    base, clients, seconds, paths = urlsplit(argv[0]), int(argv[1]), float(argv[2]), argv[3:]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures: list[str] = []
    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(base.hostname, base.port, paths[i::clients] or paths,
                                                     started + seconds, latencies[i], failures))
               for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    print(json.dumps({"latencies": [x for each in latencies for x in each], "elapsed": elapsed,
                      "failures": failures[:5], "failed": len(failures)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
