"""A minimal, fast webhook receiver for the benchmarks (no Django, stdlib only).

One asyncio process speaking just enough HTTP/1.1 (keep-alive, Content-Length bodies,
no pipelining needed) to answer every POST with `200 ok`, optionally after a fixed
delay. For each webhook request it records the arrival time (`time.time()`, taken as
soon as the whole request has been read) keyed by `"<path> <webhook-id>"`: the
`webhook-id` is the event id, so one event fanned out to several endpoints (URLs
`/hook/e1`, `/hook/e2`, ...) gives one key per endpoint.

Control endpoints (answered at once, never counted, never delayed):

    GET  /_bench/stats      {"count", "unique", "duplicates", "delay_ms", "first", "last"}
    GET  /_bench/arrivals   {"<path> <webhook-id>": <arrival time>, ...}
    POST /_bench/reset      forget everything counted so far
    POST /_bench/config     body {"delay_ms": 50}: delay every later webhook response

Run: python -m bench.receiver [--host 127.0.0.1] [--port 0] [--delay-ms 0]
It prints `READY <port>` on stdout once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
CLOSE_OK = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    b"Connection: close\r\n\r\nok"
)
MAX_HEAD = 64 * 1024


class State:
    def __init__(self, delay_ms: float) -> None:
        self.delay = delay_ms / 1000.0
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.duplicates = 0
        self.arrivals: dict[str, float] = {}
        self.first: float | None = None
        self.last: float | None = None

    def record(self, key: str | None, now: float) -> None:
        self.count += 1
        if self.first is None:
            self.first = now
        self.last = now
        if key is None:
            return
        if key in self.arrivals:
            self.duplicates += 1
        else:
            self.arrivals[key] = now

    def stats(self) -> dict:
        return {
            "count": self.count,
            "unique": len(self.arrivals),
            "duplicates": self.duplicates,
            "delay_ms": self.delay * 1000.0,
            "first": self.first,
            "last": self.last,
        }


def _json_response(obj) -> bytes:
    body = json.dumps(obj, separators=(",", ":")).encode()
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


class HookProtocol(asyncio.Protocol):
    def __init__(self, state: State, loop: asyncio.AbstractEventLoop) -> None:
        self.state = state
        self.loop = loop
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.transport = None

    def _write(self, data: bytes, close: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(data)
        if close:
            transport.close()

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    self.transport.close()
                return
            head = bytes(buf[:end])
            lines = head.split(b"\r\n")
            try:
                method, path, _version = lines[0].split(b" ", 2)
            except ValueError:
                self.transport.close()
                return
            length = 0
            webhook_id = None
            close = False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"webhook-id":
                    webhook_id = value.strip().decode("latin-1")
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            total = end + 4 + length
            if len(buf) < total:
                return
            body = bytes(buf[end + 4 : total])
            del buf[:total]
            if path.startswith(b"/_bench/"):
                self._control(method, path, body)
                continue
            now = time.time()
            key = None if webhook_id is None else f"{path.decode('latin-1')} {webhook_id}"
            self.state.record(key, now)
            delay = self.state.delay
            if delay > 0:
                self.loop.call_later(delay, self._write, CLOSE_OK if close else OK, close)
            else:
                self._write(CLOSE_OK if close else OK, close)

    def _control(self, method: bytes, path: bytes, body: bytes) -> None:
        state = self.state
        path = path.split(b"?", 1)[0]
        if path == b"/_bench/stats":
            self._write(_json_response(state.stats()), False)
        elif path == b"/_bench/arrivals":
            self._write(_json_response(state.arrivals), False)
        elif path == b"/_bench/reset" and method == b"POST":
            state.reset()
            self._write(_json_response(state.stats()), False)
        elif path == b"/_bench/config" and method == b"POST":
            config = json.loads(body or b"{}")
            if "delay_ms" in config:
                state.delay = float(config["delay_ms"]) / 1000.0
            self._write(_json_response(state.stats()), False)
        else:
            self._write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", False)


async def serve(host: str, port: int, delay_ms: float) -> None:
    loop = asyncio.get_running_loop()
    state = State(delay_ms)
    server = await loop.create_server(
        lambda: HookProtocol(state, loop), host, port, backlog=4096, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"READY {bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.delay_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
