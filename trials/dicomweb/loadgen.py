"""A load generator for `bench dicomweb --http`: N clients, each on its own keep-alive connection, fetching URLs.

Run as `python -m trials.dicomweb.loadgen` with a JSON job on stdin ({"base", "paths", "headers", "clients",
"rounds"}); prints one JSON line of per-request latencies. Standard library only, and a process of its own, so
that the clients never share an interpreter (or its lock) with the server they measure.
"""

from __future__ import annotations

import http.client
import json
import statistics
import sys
import threading
import time
from urllib.parse import urlsplit


def run(base: str, paths: list[str], headers: dict[str, str], clients: int, rounds: int) -> dict:
    url = urlsplit(base)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start_line = threading.Barrier(clients)

    def client(n: int) -> None:
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        own = paths[n * len(paths) // clients :] + paths[: n * len(paths) // clients]  # each starts elsewhere
        times = []
        start_line.wait()
        for _ in range(rounds):
            for path in own:
                began = time.perf_counter()
                connection.request("GET", url.path.rstrip("/") + path, headers=headers)
                response = connection.getresponse()
                response.read()
                times.append((time.perf_counter() - began) * 1000)
                if response.status != 200:
                    with lock:
                        errors.append(f"{response.status} {path}")
        connection.close()
        with lock:
            latencies.extend(times)

    began = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    latencies.sort()
    return {
        "median_ms": statistics.median(latencies),
        "p90_ms": latencies[int(len(latencies) * 0.9)],
        "requests": len(latencies),
        "per_second": len(latencies) / seconds,
        "errors": errors[:5],
        "latencies_ms": latencies,
        "seconds": seconds,
    }


if __name__ == "__main__":
    job = json.load(sys.stdin)
    print(json.dumps(run(job["base"], job["paths"], job["headers"], job["clients"], job["rounds"])))
