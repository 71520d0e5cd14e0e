"""A small asyncio HTTP/1.1 client that POSTs events to the API and times each one.

Two ways to load the server:

* closed loop (`closed()`): `concurrency` clients, each sends a request, waits for the
  answer, sends the next, for `seconds` — the server's throughput at that concurrency;
* open loop (`open_loop()`): requests start on a fixed schedule (`rate` per second)
  whatever the server does, and latency is measured from the scheduled start, so a
  stalled server shows up in the figures (no coordinated omission).

gunicorn's sync workers close the connection after each response, so every request
opens a new TCP connection, as a client of the real deployment would (behind a proxy
that keeps connections to clients, the proxy pays this). Runs in its own process:
`python -m bench.api.loadgen --help`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import sys
import time

PATH = "/api/v1/events/"
BATCH = 0  # > 0: POST lists of this many events to /api/v1/events/batch/


def request_bytes(port: int, token: str, body: bytes) -> bytes:
    return (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def event(partner: str, n: int, pid: int) -> dict:
    return {
        "type": "bench.event",
        "partner": partner,
        "source": "bench",
        "data": {"order": {"id": n, "total": 42.5, "currency": "EUR"}, "pid": pid},
    }


def make_body(partner: str, n: int, pid: int) -> bytes:
    if BATCH:
        items = [event(partner, n * BATCH + i, pid) for i in range(BATCH)]
        return json.dumps(items, separators=(",", ":")).encode()
    return json.dumps(event(partner, n, pid), separators=(",", ":")).encode()


async def one(port: int, payload: bytes) -> int:
    """Send one request on a new connection; return the status code (0 on error)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(payload)
        data = await reader.read()  # the server closes after the response
        writer.close()
        return int(data[9:12]) if data.startswith(b"HTTP/1.") else 0
    except (OSError, ValueError):
        return 0


async def closed(port, token, partner, concurrency, seconds):
    counter = itertools.count()
    pid = os.getpid()
    latencies, statuses = [], {}
    deadline = time.perf_counter() + seconds

    async def user():
        while time.perf_counter() < deadline:
            payload = request_bytes(port, token, make_body(partner, next(counter), pid))
            started = time.perf_counter()
            status = await one(port, payload)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(user() for _ in range(concurrency)))
    return latencies, statuses, time.perf_counter() - started


async def open_loop(port, token, partner, rate, seconds):
    pid = os.getpid()
    latencies, statuses, tasks = [], {}, []
    start = time.perf_counter()

    async def fire(scheduled: float, n: int):
        status = await one(port, request_bytes(port, token, make_body(partner, n, pid)))
        latencies.append(time.perf_counter() - scheduled)
        statuses[status] = statuses.get(status, 0) + 1

    total = int(rate * seconds)
    for n in range(total):
        scheduled = start + n / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(fire(scheduled, n)))
    await asyncio.gather(*tasks)
    return latencies, statuses, time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--partner", required=True)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, help="closed loop with N clients")
    parser.add_argument("--rate", type=float, help="open loop at N requests/s")
    parser.add_argument("--batch", type=int, default=0, help="events per batch request")
    args = parser.parse_args(argv)
    global PATH, BATCH
    if args.batch:
        PATH, BATCH = "/api/v1/events/batch/", args.batch
    if (args.concurrency is None) == (args.rate is None):
        parser.error("give --concurrency or --rate")
    if args.concurrency:
        run = closed(args.port, args.token, args.partner, args.concurrency, args.seconds)
    else:
        run = open_loop(args.port, args.token, args.partner, args.rate, args.seconds)
    latencies, statuses, elapsed = asyncio.run(run)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    json.dump(
        {
            "latencies": latencies,
            "statuses": {str(k): v for k, v in statuses.items()},
            "elapsed": elapsed,
            "client_cpu_seconds": usage.ru_utime + usage.ru_stime,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
