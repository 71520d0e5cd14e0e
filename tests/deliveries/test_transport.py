"""deliveries.transport against real local servers (no mocking of requests)."""

import datetime as dt
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from deliveries import transport
from deliveries.transport import (
    MAX_RESPONSE_BYTES,
    USER_AGENT,
    AttemptResult,
    ErrorKind,
    OutboundRequest,
    build_session,
    compose_headers,
    get_session,
    mask_headers,
    send,
)
from tests.receiver import Receiver, Response
from tests.receiver import receiver as receiver  # the fixture, until conftest has it

BODY = '{"id":"evt_1","type":"ping","data":{"name":"Zoë"}}'.encode()


def post(url, *, allow_private=True, headers=None, session=None, **kwargs):
    headers = headers or {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    request = OutboundRequest(
        url=url, body=BODY, headers=headers, allow_private=allow_private, **kwargs
    )
    return send(request, session=session)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- outcomes ---------------------------------------------------------------------------


def test_success_captures_status_body_and_headers(receiver):
    receiver.script(Response(201, b'{"ok":true}', {"X-Partner": "yes"}))
    signed = {"webhook-id": "msg_1", "webhook-timestamp": "1", "webhook-signature": "v1,abc"}
    headers = compose_headers(signed=signed, custom={"X-Tenant": "t1"}, bearer_token=None)
    result = post(receiver.url_for("/hooks/in?x=1"), headers=headers)

    assert result.succeeded, result
    assert (result.status_code, result.body, result.body_truncated) == (201, '{"ok":true}', False)
    assert result.error_kind is None and result.error_message == ""
    assert result.headers["x-partner"] == "yes"
    assert result.headers["content-length"] == "11"
    assert 0 <= result.duration_ms < 5000

    (got,) = receiver.wait_for(1)
    assert (got.method, got.path, got.status) == ("POST", "/hooks/in?x=1", 201)
    assert got.body == BODY  # the exact bytes
    assert got.headers["User-Agent"] == USER_AGENT == f"webhookhub/{transport.__version__}"
    assert got.headers["Host"] == f"127.0.0.1:{receiver.port}"
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["Content-Length"] == str(len(BODY))
    assert got.headers["X-Tenant"] == "t1"
    assert {k: got.headers[k] for k in signed} == signed
    assert "Cookie" not in got.headers


@pytest.mark.parametrize("status", [500, 404, 410, 429, 503])
def test_non_2xx_is_http_status(receiver, status):
    receiver.script(Response(status, b"nope"))
    result = post(receiver.url_for())
    assert not result.succeeded
    assert (result.status_code, result.error_kind) == (status, "http_status")
    assert result.error_message == f"HTTP {status}"
    assert result.body == "nope"


def test_redirect_is_not_followed(receiver):
    receiver.script(Response(302, b"", {"Location": receiver.url_for("/elsewhere")}))
    result = post(receiver.url_for())
    assert (result.status_code, result.error_kind, result.error_message) == (
        302,
        ErrorKind.HTTP_STATUS,
        "HTTP 302",
    )
    assert result.headers["location"].endswith("/elsewhere")
    time.sleep(0.2)
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_refused_port_is_connection_error():
    result = post(f"http://127.0.0.1:{free_port()}/hook")
    assert (result.status_code, result.error_kind) == (None, "connection")
    assert result.error_message.startswith("ConnectionError: ")
    assert "refused" in result.error_message.lower()


def test_slow_response_times_out(receiver):
    receiver.script(Response(delay=3))
    started = time.monotonic()
    result = post(receiver.url_for(), timeout=0.5)
    assert time.monotonic() - started < 2
    assert (result.status_code, result.error_kind) == (None, "timeout")
    assert result.error_message.startswith("ReadTimeout: ")
    assert 400 <= result.duration_ms < 2000


def test_unknown_host_is_dns_error():
    result = post("http://does-not-exist.invalid/")
    assert (result.status_code, result.error_kind) == (None, "dns")
    assert "does-not-exist.invalid" in result.error_message


@pytest.mark.parametrize(
    ("size", "truncated"),
    [(MAX_RESPONSE_BYTES, False), (MAX_RESPONSE_BYTES + 1, True), (1024 * 1024, True)],
)
def test_response_body_is_capped(receiver, size, truncated):
    receiver.script(Response(200, b"x" * size))
    result = post(receiver.url_for())
    assert result.succeeded
    assert len(result.body.encode()) == min(size, MAX_RESPONSE_BYTES)
    assert result.body_truncated is truncated
    # A cut-off response's connection is dropped (the rest is never read); one read to
    # its end goes back to the pool.
    assert post(receiver.url_for()).succeeded
    first, second = receiver.wait_for(2)
    assert (first.client_port != second.client_port) is (size > MAX_RESPONSE_BYTES + 1)


def test_invalid_utf8_is_replaced(receiver):
    receiver.script(Response(200, b"caf\xe9 \xff"))
    assert post(receiver.url_for()).body == "caf\ufffd \ufffd"


def test_tls_to_plain_http_port_is_tls_error(receiver):
    result = post(f"https://127.0.0.1:{receiver.port}/hook")
    assert (result.status_code, result.error_kind) == (None, "tls")
    assert result.error_message.startswith("SSLError: ")
    assert receiver.requests == []


def test_slow_drip_body_is_cut_at_the_deadline():
    """Headers arrive at once, then one byte per 0.1 s: each read is quick, the whole is not."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip():
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            while not stop.wait(0.1):
                try:
                    conn.sendall(b"x")
                except OSError:
                    return

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        result = post(
            f"http://127.0.0.1:{server.getsockname()[1]}/", timeout=0.5, connect_timeout=0.3
        )
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        server.close()
    assert (result.status_code, result.error_kind) == (200, "timeout")
    assert not result.succeeded
    assert 0.7 <= elapsed < 1.5


# -- SSRF guard ------------------------------------------------------------------------


def test_loopback_refused_unless_private_allowed(receiver):
    result = post(receiver.url_for(), allow_private=False)
    assert (result.status_code, result.error_kind) == (None, "refused_unsafe_address")
    assert "loopback" in result.error_message
    time.sleep(0.2)
    assert receiver.requests == []


def test_hostname_resolving_to_loopback_is_refused(receiver):
    assert socket.gethostbyname("localhost") == "127.0.0.1"
    result = post(f"http://localhost:{receiver.port}/hook", allow_private=False)
    assert result.error_kind == ErrorKind.UNSAFE_ADDRESS
    assert "'localhost' resolves to a refused address" in result.error_message
    time.sleep(0.2)
    assert receiver.requests == []


def test_allowed_hostname_keeps_its_host_header(receiver):
    result = post(f"http://localhost:{receiver.port}/hook", allow_private=True)
    assert result.succeeded, result
    assert receiver.wait_for(1)[0].headers["Host"] == f"localhost:{receiver.port}"


def test_ipv6_literal_is_pinned_with_a_bracketed_host_header():
    try:
        server = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    port, seen = server.getsockname()[1], []

    def answer():
        conn, _ = server.accept()
        with conn:
            seen.append(conn.recv(65536))
            conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    with server:
        assert (
            post(f"http://[::1]:{port}/", allow_private=False).error_kind
            == "refused_unsafe_address"
        )
        result = post(f"http://[::1]:{port}/", allow_private=True)
        thread.join(5)
    assert (result.status_code, result.succeeded) == (204, True)
    assert f"Host: [::1]:{port}\r\n".encode() in seen[0]


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data/", "http://[::ffff:169.254.169.254]/"]
)
def test_metadata_address_refused_even_when_private_allowed(url):
    started = time.monotonic()
    result = post(url, allow_private=True, connect_timeout=5)
    assert time.monotonic() - started < 1  # refused before connecting, no connect timeout
    assert (result.error_kind, result.status_code) == ("refused_unsafe_address", None)
    assert "metadata" in result.error_message


def test_resolve_checked_returns_the_pinned_address():
    assert transport.resolve_checked("localhost", 80, allow_private=True) == "127.0.0.1"
    with pytest.raises(transport.RefusedAddressError):
        transport.resolve_checked("localhost", 80, allow_private=False)


# -- TLS: SNI and certificate verification use the URL's host name ---------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("Test CA"))
        .issuer_name(name("Test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for host in ("localhost", "other.example"):
        leaf = (
            x509.CertificateBuilder()
            .subject_name(name(host))
            .issuer_name(ca.subject)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )
        pem = leaf.public_bytes(serialization.Encoding.PEM) + key_pem
        (directory / f"{host}.pem").write_bytes(pem)
    return directory


def tls_receiver(tls_files, cert_host, seen_sni):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_files / f"{cert_host}.pem")
    context.sni_callback = lambda _sock, server_name, _ctx: seen_sni.append(server_name)
    return Receiver(ssl_context=context)


def test_https_pins_the_address_but_verifies_the_hostname(tls_files):
    seen_sni = []
    session = build_session(allow_private=True)
    session.verify = str(tls_files / "ca.pem")
    with tls_receiver(tls_files, "localhost", seen_sni) as tls:
        result = post(f"https://localhost:{tls.port}/secure", session=session)
        assert result.succeeded, result
        (got,) = tls.wait_for(1)
        assert got.headers["Host"] == f"localhost:{tls.port}"
        assert got.body == BODY
        assert seen_sni == ["localhost"]

        # The certificate names "localhost", not the IP we connected to.
        result = post(f"https://127.0.0.1:{tls.port}/secure", session=session)
        assert (result.error_kind, result.status_code) == ("tls", None)
        # The default trust store does not know our test CA.
        result = post(f"https://localhost:{tls.port}/secure")
        assert result.error_kind == "tls"
        assert "CERTIFICATE_VERIFY_FAILED" in result.error_message


def test_https_certificate_for_another_name_is_refused(tls_files):
    session = build_session(allow_private=True)
    session.verify = str(tls_files / "ca.pem")
    with tls_receiver(tls_files, "other.example", []) as tls:
        result = post(f"https://localhost:{tls.port}/secure", session=session)
        assert result.error_kind == "tls"
        assert "localhost" in result.error_message
        assert tls.requests == []


# -- sessions --------------------------------------------------------------------------


def test_session_is_per_process_and_per_allow_private(monkeypatch):
    public, private = get_session(), get_session(allow_private=True)
    assert public is get_session(allow_private=False) and private is not public
    assert public.get_adapter("https://x/").allow_private is False
    assert private.get_adapter("http://x/").allow_private is True
    monkeypatch.setattr(transport.os, "getpid", lambda: -1)  # as if in a forked child
    assert get_session() is not public


def test_keep_alive_connections_are_reused(receiver):
    for _ in range(3):
        assert post(receiver.url_for()).succeeded
    assert len({r.client_port for r in receiver.wait_for(3)}) == 1


def test_concurrent_sends_share_the_pool(receiver):
    receiver.default = Response(delay=0.3)
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda _: post(receiver.url_for()), range(16)))
    assert all(r.succeeded for r in results)
    assert receiver.max_concurrency >= 8


def test_send_never_raises_on_bad_input():
    expected = {"ftp://example.com/": "InvalidSchema", "example.com/hook": "MissingSchema"}
    for url, error in {**expected, "http://": "InvalidURL"}.items():
        result = post(url)
        assert isinstance(result, AttemptResult)
        assert result.error_kind == "connection"
        assert result.error_message.startswith(f"{error}: ")


# -- headers ---------------------------------------------------------------------------

SIGNED = {"webhook-id": "msg_1", "webhook-timestamp": "1700000000", "webhook-signature": "v1,s"}


def test_compose_headers_defaults():
    assert compose_headers(signed=SIGNED, custom=None, bearer_token=None) == {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **SIGNED,
    }


def test_custom_headers_cannot_override_protected_ones():
    custom = {
        "X-Tenant": "acme",
        "content-type": "text/plain",
        "USER-AGENT": "evil",
        "Host": "evil.example",
        "Content-Length": "0",
        "Transfer-Encoding": "chunked",
        "Keep-Alive": "timeout=5",
        "TE": "trailers",
        "Trailer": "X-Tail",
        "Upgrade": "h2c",
        "Expect": "100-continue",
        "Proxy-Authorization": "Basic abc",
        "Proxy-Connection": "keep-alive",
        "Webhook-Signature": "v1,forged",
        "webhook-id": "msg_forged",
        "WEBHOOK-Custom": "x",
        "Authorization": "Basic abc",
    }
    headers = compose_headers(signed=SIGNED, custom=custom, bearer_token="tok_123")
    assert headers == {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Tenant": "acme",
        **SIGNED,
        "Authorization": "Bearer tok_123",
    }


def test_custom_authorization_is_never_sent_the_bearer_token_is():
    # Refused when saved (endpoints.header_rules: one list for validation and transport).
    headers = compose_headers(signed=SIGNED, custom={"authorization": "Basic abc"}, bearer_token="")
    assert "authorization" not in headers and "Authorization" not in headers


def test_mask_headers():
    masked = mask_headers(
        {
            "Authorization": "Bearer abcdefghijklmnop",
            "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "webhook-id": "msg_1",
            "X-Api-Key": "short",
            "X-Auth-Token": "0123456789abcdef",
            "X-Client-Secret": "s3cr3t-value-here",
            "Cookie": "session=abcdefghijklmnop",
            "Content-Type": "application/json",
            "X-Tenant": "acme",
        }
    )
    assert masked == {
        "Authorization": "••••mnop",
        "webhook-signature": "••••1OE=",
        "webhook-id": "msg_1",
        "X-Api-Key": "••••",
        "X-Auth-Token": "••••cdef",
        "X-Client-Secret": "••••here",
        "Cookie": "••••mnop",
        "Content-Type": "application/json",
        "X-Tenant": "acme",
    }
    assert mask_headers({"X-Token": "12345678901"}) == {"X-Token": "••••"}  # < 12: all masked
    assert mask_headers({"X-Token": "123456789012"}) == {"X-Token": "••••9012"}


def test_custom_header_values_are_masked_whatever_their_name():
    headers = {
        "X-Password": "hunter2-long-secret-value",
        "X-Tenant": "acme",
        "X-Api-Key": "0123456789abcdef",
        "Content-Type": "application/json",
        "webhook-id": "msg_1",
    }
    assert mask_headers(headers, secret_names=frozenset({"x-password", "x-tenant"})) == {
        "X-Password": "••••alue",
        "X-Tenant": "••••",
        "X-Api-Key": "••••cdef",
        "Content-Type": "application/json",
        "webhook-id": "msg_1",
    }
