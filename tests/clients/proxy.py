"""A TCP proxy that misbehaves on cue, in front of a real server.

    proxy = FlakyProxy(upstream=web.url, plan=[DROP, answer(503)])
    # 1st connection: the request reaches the server, whose whole answer is read, then
    #                 the client's connection is closed without it (a dropped reply)
    # 2nd connection: answered 503 by the proxy itself (the server never sees it)
    # after the plan: relayed both ways

Promises: one request per connection (each forwarded request asks the server for
`Connection: close`, so the proxy knows the answer is complete when the server closes);
every request is recorded in `requests` (in arrival order, with what was done to it)
before anything is answered; `close()` stops it and frees its sockets.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

DROP = "drop"
RELAY = "relay"


def answer(status: int, body: object = None, headers: dict[str, str] | None = None) -> bytes:
    """A complete HTTP/1.1 response for the plan; `body` as JSON unless bytes or str."""
    if isinstance(body, bytes):
        payload = body
    elif isinstance(body, str):
        payload = body.encode()
    else:
        payload = json.dumps(body if body is not None else {"detail": "x", "errors": {}}).encode()
    lines = [f"HTTP/1.1 {status} Proxy", f"Content-Length: {len(payload)}", "Connection: close"]
    lines.append("Content-Type: application/json")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


@dataclass
class ProxiedRequest:
    action: str  # DROP, RELAY, or "answer"
    request_line: str
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


class FlakyProxy:
    def __init__(self, upstream: str, plan: list[str | bytes] = ()):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.plan = list(plan)
        self.requests: list[ProxiedRequest] = []
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(5)
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _track(self, sock: socket.socket) -> socket.socket:
        sock.settimeout(30)
        with self._lock:
            self._sockets.append(sock)
        return sock

    def _serve(self, client: socket.socket) -> None:
        with self._track(client):
            head, body = _read_request(client)
            if head is None:
                return  # connected and left (e.g. a pooled connection closed)
            with self._lock:
                step = self.plan.pop(0) if self.plan else RELAY
                action = step if isinstance(step, str) else "answer"
                self.requests.append(
                    ProxiedRequest(action, head.split(b"\r\n", 1)[0].decode(), body)
                )
            if isinstance(step, bytes):
                client.sendall(step)
                return
            upstream = self._track(socket.create_connection(self.upstream, timeout=30))
            with upstream:
                upstream.sendall(_connection_close(head) + body)
                response = _read_to_end(upstream)
            if step == RELAY:
                client.sendall(response)
            # DROP: the server has answered (and committed); the client never hears it.


def _read_request(sock: socket.socket) -> tuple[bytes | None, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head, body


def _connection_close(head: bytes) -> bytes:
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
    return b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n"


def _read_to_end(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data
