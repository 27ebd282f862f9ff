"""A bounded load generator, run as its own process: `python -m bench.loadgen URL CLIENTS PATH...`.

Each of CLIENTS threads keeps one HTTP/1.1 connection open and sends its share of the
paths one after another (a closed loop: a fixed number of requests, the next sent when
the last answered). Prints one JSON object: the latency of every request, in seconds.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit


def client(host: str, port: int, paths: list[str], out: list[float], failures: list[str]) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=60)
    for path in paths:
        started = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        out.append(time.perf_counter() - started)
        if response.status != 200:
            failures.append(f"{path}: {response.status} {body[:200]!r}")
    conn.close()


def main(argv: list[str]) -> int:
    base, clients, paths = urlsplit(argv[0]), int(argv[1]), argv[2:]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures: list[str] = []
    threads = [threading.Thread(target=client, args=(base.hostname, base.port, paths[i::clients],
                                                     latencies[i], failures)) for i in range(clients)]
    started = time.perf_counter()
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
