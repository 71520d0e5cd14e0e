"""One webhook HTTP POST -> one `AttemptResult`. Pure (no Django); `send` never raises.

Promises:

* Redirects are not followed (a 3xx is a failed attempt); any non-2xx is ``http_status``.
* At most `MAX_RESPONSE_BYTES` of the response body are read (the rest is never
  downloaded), decoded as UTF-8 with replacement; reading the body stops at a deadline
  of connect_timeout + timeout after the attempt started.
* SSRF guard at connect time: the host is resolved once, the address is checked with
  `endpoints.url_safety.check_address`, and the connection goes to that very address
  (no second lookup a DNS-rebinding attacker could answer differently) while the Host
  header, TLS SNI and certificate verification keep using the URL's host name.
* No proxies, netrc credentials or cookies from the environment or earlier responses.
"""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from http.cookiejar import DefaultCookiePolicy

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.util.connection import allowed_gai_family

from endpoints import header_rules
from endpoints.url_safety import UnsafeURLError, check_address
from webhookhub import __version__

MAX_RESPONSE_BYTES = 20 * 1024
MAX_ERROR_CHARS = 500
USER_AGENT = f"webhookhub/{__version__}"
POOL_MAXSIZE = 32  # connections kept per (host, port); >= the delivery thread pool size
POOL_CONNECTIONS = 100  # distinct hosts kept in the pool manager
# Headers whose values are credentials by their name (custom headers are masked whatever
# their name: `OutboundRequest.secret_header_names`).
SENSITIVE_NAME_PARTS = ("token", "secret", "signature", "api-key", "apikey", "auth", "cookie")


class ErrorKind(StrEnum):
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    DNS = "dns"
    TLS = "tls"
    UNSAFE_ADDRESS = "refused_unsafe_address"
    HTTP_STATUS = "http_status"
    # 2xx to a verification challenge without the challenge (deliveries.verification)
    CHALLENGE_NOT_ANSWERED = "challenge_not_answered"


@dataclass(frozen=True)
class OutboundRequest:
    url: str
    body: bytes
    headers: Mapping[str, str]
    timeout: float = 15.0  # seconds: read timeout, and the body-reading budget
    connect_timeout: float | None = None  # default: min(5, timeout)
    allow_private: bool = False
    # Lower-cased names whose values are masked in attempt records whatever the name
    # says (the endpoint's custom headers: their values are the partner's secrets).
    secret_header_names: frozenset[str] = frozenset()

    @property
    def timeouts(self) -> tuple[float, float]:
        """(connect, read) as requests wants them."""
        connect = min(5.0, self.timeout) if self.connect_timeout is None else self.connect_timeout
        return connect, self.timeout


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    headers: dict[str, str] = field(default_factory=dict)  # response headers, lower-cased
    body: str = ""
    body_truncated: bool = False
    duration_ms: int = 0
    error_kind: str | None = None
    error_message: str = ""

    @property
    def succeeded(self) -> bool:
        code = self.status_code
        return self.error_kind is None and code is not None and 200 <= code < 300


class RefusedAddressError(requests.RequestException):
    """The host resolved to an address `check_address` refuses; nothing was sent."""


def compose_headers(
    *, signed: Mapping[str, str], custom: Mapping[str, str] | None, bearer_token: str | None
) -> dict[str, str]:
    """Outgoing headers: ours, then the custom ones, then signature and auth headers.

    Protected names (`header_rules.is_protected`) are refused when an endpoint is saved;
    skipping them here too keeps a row written some other way from overriding ours.
    """
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    for name, value in (custom or {}).items():
        if not header_rules.is_protected(name):
            headers[name] = value
    headers.update(signed)
    if bearer_token:
        headers["Authorization"] = f"Bearer {bearer_token}"
    return headers


def mask_headers(
    headers: Mapping[str, str], *, secret_names: frozenset[str] = frozenset()
) -> dict[str, str]:
    """Headers fit for storage: credentials become ``••••`` + their last 4 characters
    (`header_rules.mask_value`). Credentials are the headers named in `secret_names`
    (lower-case) and those whose name says so (`SENSITIVE_NAME_PARTS`)."""

    def secret(name: str) -> bool:
        lower = name.lower()
        return lower in secret_names or any(part in lower for part in SENSITIVE_NAME_PARTS)

    return {
        name: header_rules.mask_value(value) if secret(name) else value
        for name, value in headers.items()
    }


def resolve_checked(host: str, port: int, *, allow_private: bool) -> str:
    """Resolve `host` once; return the address to connect to, or raise if it is refused."""
    try:
        infos = socket.getaddrinfo(host, port, family=allowed_gai_family(), type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise requests.ConnectionError(f"cannot resolve {host!r}: {exc.strerror}") from exc
    # One address, IPv4 preferred: unlike a plain connect there is no fallback to the
    # next address, and IPv6 records without an IPv6 route are the common failure.
    best = min(infos, key=lambda info: info[0] != socket.AF_INET)  # min() is stable
    address = str(best[4][0])
    try:
        check_address(address, allow_private=allow_private)
    except UnsafeURLError as exc:
        raise RefusedAddressError(f"{host!r} resolves to a refused address: {exc}") from exc
    return address


class PinnedAddressAdapter(HTTPAdapter):
    """Connects to the checked address of the URL's host.

    Modelled on requests-hardened's ``IPFilterAdapter`` (requests_hardened/
    ip_filter_adapter.py, MIT): same pool-key override, Host header and
    ``assert_hostname``/``server_hostname`` handling. Ours checks with our own
    `check_address`, which can allow private targets yet still refuse cloud metadata.
    """

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        super().__init__(
            pool_connections=POOL_CONNECTIONS, pool_maxsize=POOL_MAXSIZE, max_retries=0
        )

    def build_connection_pool_key_attributes(self, request, verify, cert=None):  # type: ignore[no-untyped-def]
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        hostname, port = host_params["host"], host_params["port"]
        is_https = host_params["scheme"] == "https"
        address = resolve_checked(
            hostname, port or (443 if is_https else 80), allow_private=self.allow_private
        )
        # Copy: the caller's header mapping may be shared between requests.
        request.headers = CaseInsensitiveDict(request.headers or {})
        host_header = f"[{hostname}]" if ":" in hostname else hostname
        request.headers["Host"] = host_header if port is None else f"{host_header}:{port}"
        if is_https:  # verify the certificate for, and send SNI of, the name, not the IP
            pool_kwargs["assert_hostname"] = hostname
            pool_kwargs["server_hostname"] = hostname
        host_params["host"] = f"[{address}]" if ":" in address else address
        return host_params, pool_kwargs


def build_session(*, allow_private: bool) -> requests.Session:
    """A session whose http(s) traffic goes through a `PinnedAddressAdapter`."""
    session = requests.Session()
    session.trust_env = False  # no *_PROXY (would bypass pinning), no ~/.netrc credentials
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # never keep cookies
    session.headers["User-Agent"] = USER_AGENT
    adapter = PinnedAddressAdapter(allow_private=allow_private)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


_sessions: dict[tuple[int, bool], requests.Session] = {}


def get_session(*, allow_private: bool = False) -> requests.Session:
    """This process's pooled, thread-safe session for one `allow_private` value.

    Keyed by pid so a forked child never shares its parent's sockets. Lock-free (so
    also fork-safe): racing threads may build two sessions, `setdefault` keeps one.
    """
    key = (os.getpid(), allow_private)
    if (session := _sessions.get(key)) is None:
        if any(pid != key[0] for pid, _ in list(_sessions)):
            _sessions.clear()  # inherited from the parent process
        session = _sessions.setdefault(key, build_session(allow_private=allow_private))
    return session


def send(request: OutboundRequest, *, session: requests.Session | None = None) -> AttemptResult:
    """POST `request` once. `session` defaults to `get_session(allow_private=...)`;
    a custom one should come from `build_session` to keep the SSRF guard."""
    started = time.perf_counter()
    connect_timeout, read_timeout = request.timeouts
    deadline = started + connect_timeout + read_timeout
    status: int | None = None
    headers: dict[str, str] = {}
    body, truncated = b"", False
    kind: ErrorKind | None = None
    message = ""
    try:
        http = session or get_session(allow_private=request.allow_private)
        with http.post(
            request.url,
            data=request.body,
            headers=dict(request.headers),
            timeout=(connect_timeout, read_timeout),
            allow_redirects=False,
            stream=True,
        ) as response:
            status = response.status_code
            headers = {name.lower(): value for name, value in response.headers.items()}
            body, truncated = _read_body(response, deadline, read_timeout)
        if not 200 <= status < 300:
            kind, message = ErrorKind.HTTP_STATUS, f"HTTP {status}"
    except Exception as exc:
        kind, message = _classify(exc), _describe(exc)
    return AttemptResult(
        status_code=status,
        headers=headers,
        body=body.decode("utf-8", errors="replace"),
        body_truncated=truncated,
        duration_ms=round((time.perf_counter() - started) * 1000),
        error_kind=None if kind is None else str(kind),
        error_message=message,
    )


def _read_body(
    response: requests.Response, deadline: float, read_timeout: float
) -> tuple[bytes, bool]:
    raw, buf = response.raw, bytearray()
    while len(buf) <= MAX_RESPONSE_BYTES:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            raise TimeoutError("response body not received before the deadline")
        sock = getattr(getattr(raw, "connection", None), "sock", None)
        if sock is not None:  # so a slow drip cannot outlast the deadline
            sock.settimeout(min(read_timeout, remaining))
        chunk = raw.read1(MAX_RESPONSE_BYTES + 1 - len(buf), decode_content=True)
        if not chunk:
            return bytes(buf), False
        buf += chunk
    return bytes(buf[:MAX_RESPONSE_BYTES]), True  # closing the response drops the rest


_TIMEOUTS = (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)
_TLS_ERRORS = (requests.exceptions.SSLError, urllib3.exceptions.SSLError, ssl.SSLError)
_DNS_ERRORS = (socket.gaierror, urllib3.exceptions.NameResolutionError)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[object] = [exc]
    while todo and len(seen) < 20:
        current = todo.pop()
        if not isinstance(current, BaseException) or any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [current.__cause__, current.__context__, getattr(current, "reason", None)]
        todo += [arg for arg in current.args if isinstance(arg, BaseException)]
    return seen


def _classify(exc: Exception) -> ErrorKind:
    chain = _chain(exc)

    def found(types: type[BaseException] | tuple[type[BaseException], ...]) -> bool:
        return any(isinstance(e, types) for e in chain)

    if found(RefusedAddressError):
        return ErrorKind.UNSAFE_ADDRESS
    # Only the top-level exception: urllib3's NewConnectionError (connection refused)
    # subclasses its ConnectTimeoutError, so searching the chain would misfile it.
    if isinstance(exc, _TIMEOUTS) and not isinstance(exc, urllib3.exceptions.NewConnectionError):
        return ErrorKind.TIMEOUT
    if found(_TLS_ERRORS):
        return ErrorKind.TLS
    if found(_DNS_ERRORS):
        return ErrorKind.DNS
    return ErrorKind.CONNECTION


def _describe(exc: Exception) -> str:
    """``<Class>: <message>``, skipping requests' "Max retries exceeded" wrapping."""
    detail = next(
        (e.reason for e in _chain(exc) if isinstance(e, urllib3.exceptions.MaxRetryError)), None
    )
    text = " ".join(str(detail if isinstance(detail, BaseException) else exc).split())
    message = f"{type(exc).__name__}: {text or type(exc).__name__}"
    return message if len(message) <= MAX_ERROR_CHARS else message[: MAX_ERROR_CHARS - 1] + "…"
