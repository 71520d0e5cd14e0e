"""A raw asyncio HTTP/1.1 load client, used to measure the receiver's ceiling.

`--connections` keep-alive connections each send one POST, wait for its response,
send the next, until `--seconds` have passed. Requests look like real deliveries
(about the same headers and body size, a unique `webhook-id` each). Prints one JSON
line: {"requests": n, "seconds": s, "errors": e}.

Run: python -m bench.loadgen --port P [--connections 32] [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

BODY = json.dumps(
    {
        "id": "evt_01JXXXXXXXXXXXXXXXXXXXXXXX",
        "type": "bench.event",
        "timestamp": "2025-01-01T00:00:00.000Z",
        "data": {"n": 1, "pad": "x" * 120},
    },
    separators=(",", ":"),
).encode()


def request_bytes(host: str, port: int, webhook_id: str) -> bytes:
    return (
        f"POST /hook HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: bench-loadgen\r\n"
        "Accept-Encoding: gzip, deflate\r\nAccept: */*\r\nConnection: keep-alive\r\n"
        f"Content-Type: application/json\r\nwebhook-id: {webhook_id}\r\n"
        f"webhook-timestamp: {int(time.time())}\r\n"
        "webhook-signature: v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY


class Client(asyncio.Protocol):
    def __init__(self, gen, deadline: float, done: asyncio.Future) -> None:
        self.gen = gen
        self.deadline = deadline
        self.done = done
        self.buf = bytearray()
        self.count = 0
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.gen())

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in bytes(buf[:end]).split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            total = end + 4 + length
            if len(buf) < total:
                return
            del buf[:total]
            self.count += 1
            if time.monotonic() >= self.deadline:
                self.transport.close()
                return
            self.transport.write(self.gen())

    def connection_lost(self, exc) -> None:
        if not self.done.done():
            self.done.set_result(self.count)


async def run(host: str, port: int, connections: int, seconds: float) -> dict:
    loop = asyncio.get_running_loop()
    pid = os.getpid()
    counter = iter(range(10**12))

    def gen() -> bytes:
        return request_bytes(host, port, f"lg{pid}-{next(counter)}")

    started = time.monotonic()
    deadline = started + seconds
    futures = []
    errors = 0
    for _ in range(connections):
        done = loop.create_future()
        try:
            await loop.create_connection(lambda d=done: Client(gen, deadline, d), host, port)
            futures.append(done)
        except OSError:
            errors += 1
    counts = await asyncio.gather(*futures)
    return {
        "requests": sum(counts),
        "seconds": time.monotonic() - started,
        "errors": errors,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.host, args.port, args.connections, args.seconds))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
