"""A real HTTP server standing in for a partner's webhook endpoint in tests.

    def test_something(receiver):            # the fixture below
        receiver.script(Response(status=500), Response(status=200))
        ...  # POST to receiver.url_for("/hook")
        first, second = receiver.wait_for(2)
        assert second.headers["webhook-id"] == first.headers["webhook-id"]

Promises: HTTP/1.1 with keep-alive and correct Content-Length; every request is
recorded (in arrival order) in `requests` *before* its response is written, so a client
that got a response always finds its request recorded; scripted responses are consumed
in order, then `respond_with`'s callable (if set), then `default`; `max_concurrency` is
the peak number of requests being handled at once; `close()` frees every thread and
socket quickly, even with delayed responses or idle keep-alive clients.
"""

from __future__ import annotations

import collections
import contextlib
import json
import socket
import ssl
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from requests.structures import CaseInsensitiveDict


@dataclass(frozen=True)
class Response:
    status: int = 200
    body: bytes | str = b"ok"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (cut short by close())
    drop: bool = False  # close the connection without answering


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: CaseInsensitiveDict[str]  # duplicate header lines are joined with ", "
    body: bytes
    started_at: float  # time.monotonic() once the request line and headers were read
    client_port: int  # differs between TCP connections: shows keep-alive reuse
    status: int | None = None  # the status it was answered with (None if dropped)
    finished_at: float | None = None  # time.monotonic() once the response was written

    def json(self) -> object:
        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TestReceiver/1.0"
    timeout = 30  # idle keep-alive connections end after this
    server: _Server

    def _handle(self) -> None:
        self.server.receiver._handle(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output quiet


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog is 5: 20 connections opened at once could see one
    # SYN dropped and retried a second later, as a real receiver's larger backlog would not.
    request_queue_size = 128
    block_on_close = False
    receiver: Receiver
    ssl_context: ssl.SSLContext | None = None

    def finish_request(self, request, client_address):  # type: ignore[no-untyped-def]
        if self.ssl_context is None:
            return super().finish_request(request, client_address)
        request.settimeout(_Handler.timeout)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except OSError:
            return None  # failed handshake: the client sees a TLS error
        self.receiver._track(tls, add=True)
        try:
            return super().finish_request(tls, client_address)
        finally:
            self.receiver._track(tls, add=False)
            tls.close()

    def process_request(self, request, client_address):  # type: ignore[no-untyped-def]
        self.receiver._track(request, add=True)
        super().process_request(request, client_address)

    def shutdown_request(self, request):  # type: ignore[no-untyped-def]
        self.receiver._track(request, add=False)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):  # type: ignore[no-untyped-def]
        # Clients hanging up mid-response are expected (timeouts, truncation, close()).
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class Receiver:
    """Start on construction; use as a context manager or call `close()`.

    With `ssl_context` (a server-side context) it speaks HTTPS; the handshake happens
    in the connection's thread, so a client that never handshakes blocks nobody.
    """

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.default = Response()
        self.requests: list[ReceivedRequest] = []
        self.max_concurrency = 0
        self.errors: list[Exception] = []  # raised by the respond_with callable
        self._handler_fn: Callable[[ReceivedRequest], Response] | None = None
        self._queue: collections.deque[Response] = collections.deque()
        self._active = 0
        self._sockets: set[socket.socket] = set()
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.receiver = self
        self._server.ssl_context = ssl_context
        self.port: int = self._server.server_address[1]
        self.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def url_for(self, path: str = "/hook") -> str:
        return self.url + (path if path.startswith("/") else "/" + path)

    def script(self, *responses: Response) -> None:
        """Queue responses for the next requests, in order (then `respond_with`/`default`)."""
        with self._cond:
            self._queue.extend(responses)

    def respond_with(self, fn: Callable[[ReceivedRequest], Response] | None) -> None:
        """Per-request logic for requests the script does not cover (None to unset)."""
        self._handler_fn = fn

    def answer_challenges(self, *, otherwise: Response | None = None) -> None:
        """Answer webhookhub's verification challenges as a receiver that implements
        them does (200 `{"challenge": …}`), everything else with `otherwise` (or the
        default). Scripted responses still come first."""
        self.respond_with(lambda request: challenge_answer(request) or otherwise or self.default)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Block until at least `count` requests arrived; return them all."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= count, timeout):
                got = [f"{r.method} {r.path} -> {r.status}" for r in self.requests]
                raise AssertionError(
                    f"receiver at {self.url} expected {count} request(s) within {timeout}s, "
                    f"got {len(got)}: {got}"
                )
            return list(self.requests)

    def reset(self) -> None:
        with self._cond:
            self.requests.clear()
            self.errors.clear()
            self._queue.clear()
            self._handler_fn = None
            self.default = Response()
            self.max_concurrency = self._active

    def close(self) -> None:
        if self._closing.is_set():
            return
        self._closing.set()
        self._server.shutdown()
        with self._cond:
            sockets = list(self._sockets)
        for sock in sockets:  # wake handlers blocked on idle keep-alive connections
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Receiver {self.url} requests={len(self.requests)}>"

    # -- called from handler threads ------------------------------------------------

    def _track(self, sock: socket.socket, *, add: bool) -> None:
        with self._cond:
            (self._sockets.add if add else self._sockets.discard)(sock)

    def _handle(self, handler: _Handler) -> None:
        with self._cond:
            self._active += 1
            self.max_concurrency = max(self.max_concurrency, self._active)
        try:
            self._serve(handler)
        finally:
            with self._cond:
                self._active -= 1

    def _serve(self, handler: _Handler) -> None:
        started_at = time.monotonic()
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
        for name, value in handler.headers.items():
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        record = ReceivedRequest(
            method=handler.command,
            path=handler.path,
            headers=headers,
            body=_read_body(handler),
            started_at=started_at,
            client_port=handler.client_address[1],
        )
        with self._cond:
            response = self._queue.popleft() if self._queue else None
            fn = self._handler_fn
        if response is None and fn is not None:
            try:
                response = fn(record)
            except Exception as exc:  # show the test's bug instead of a hung-up client
                self.errors.append(exc)
                response = Response(500, traceback.format_exc(), {"X-Receiver-Error": "1"})
        response = response or self.default
        record.status = None if response.drop else response.status
        with self._cond:
            self.requests.append(record)
            self._cond.notify_all()
        if response.delay and self._closing.wait(response.delay):
            response = Response(drop=True)
        if response.drop:
            handler.close_connection = True
            return
        body = response.body.encode() if isinstance(response.body, str) else response.body
        no_body = response.status in (204, 304) or response.status < 200
        handler.send_response(response.status)
        for name, value in response.headers.items():
            if name.lower() != "content-length":  # always computed below
                handler.send_header(name, value)
        if not no_body:
            if not any(name.lower() == "content-type" for name in response.headers):
                handler.send_header("Content-Type", "text/plain; charset=utf-8")
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if handler.command != "HEAD" and not no_body:
            handler.wfile.write(body)
        handler.wfile.flush()
        record.finished_at = time.monotonic()


def challenge_answer(request: ReceivedRequest) -> Response | None:
    """The answer to a `webhookhub.endpoint.verification` request; None for others."""
    try:
        envelope = json.loads(request.body)
    except ValueError:
        return None
    if not isinstance(envelope, dict) or envelope.get("type") != "webhookhub.endpoint.verification":
        return None
    body = json.dumps({"challenge": envelope["data"]["challenge"]})
    return Response(200, body, {"Content-Type": "application/json"})


def _read_body(handler: _Handler) -> bytes:
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        chunks = []
        while size := int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
        while handler.rfile.readline().strip():  # trailers
            pass
        return b"".join(chunks)
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A started `Receiver`, closed after the test."""
    with Receiver() as started:
        yield started
