"""Which webhook URLs and addresses are refused (SPEC §5)."""

import pytest

from endpoints.url_safety import UnsafeURLError, check_address, check_url


@pytest.mark.parametrize(
    ("url", "allow_private", "message"),
    [
        ("ftp://example.com/hook", False, "http:// or https://"),
        ("javascript:alert(1)", True, "http:// or https://"),
        ("example.com/hook", False, "http:// or https://"),
        ("http://", False, "no host"),
        ("http://user:pw@example.com/", False, "user name or password"),
        ("http://127.0.0.1:8000/hook", False, "loopback"),
        ("http://[::1]/hook", False, "loopback"),
        ("http://localhost/hook", False, "loopback host"),
        ("http://api.localhost/hook", False, "loopback host"),
        ("http://10.1.2.3/hook", False, "private"),
        ("http://192.168.1.1/hook", False, "private"),
        ("http://172.16.0.1/hook", False, "private"),
        ("http://100.64.0.1/hook", False, "private"),
        ("http://169.254.10.10/hook", False, "link-local"),
        ("http://[fe80::1]/hook", False, "link-local"),
        ("http://[::ffff:127.0.0.1]/hook", False, "loopback"),
        ("http://0.0.0.0/hook", False, "not a public unicast"),
        ("http://224.0.0.1/hook", False, "not a public unicast"),
        ("http://169.254.169.254/latest/meta-data", True, "metadata"),
        ("http://[fd00:ec2::254]/", True, "metadata"),
        ("http://metadata.google.internal/computeMetadata/v1/", True, "metadata host"),
        ("http://example.com/a b", False, "whitespace"),
        ("http://example.com:99999/", False, "malformed"),
        ("http://exa..mple.com/", False, "not a valid host name"),
        ("http://example.com/" + "a" * 2001, False, "longer than"),
    ],
)
def test_refused_urls_name_the_reason(url, allow_private, message):
    with pytest.raises(UnsafeURLError, match=message):
        check_url(url, allow_private=allow_private)


@pytest.mark.parametrize(
    ("url", "allow_private"),
    [
        ("https://hooks.partner.example/webhooks", False),
        ("http://93.184.216.34:8080/hook", False),
        ("http://127.0.0.1:8000/hook", True),
        ("http://10.1.2.3/hook", True),
        ("http://localhost:9000/", True),
    ],
)
def test_allowed_urls(url, allow_private):
    check_url(url, allow_private=allow_private)


def test_https_can_be_required():
    with pytest.raises(UnsafeURLError, match="https://"):
        check_url("http://hooks.partner.example/", allow_private=False, require_https=True)
    check_url("https://hooks.partner.example/", allow_private=False, require_https=True)


@pytest.mark.parametrize(
    ("address", "allow_private", "refused"),
    [
        ("8.8.8.8", False, False),
        ("127.0.0.1", False, True),
        ("127.0.0.1", True, False),
        ("10.0.0.5", True, False),
        ("169.254.169.254", True, True),
        ("::ffff:169.254.169.254", True, True),
        ("2606:4700::1111", False, False),
        ("fc00::1", False, True),
        ("not-an-ip", True, True),
    ],
)
def test_resolved_addresses(address, allow_private, refused):
    if refused:
        with pytest.raises(UnsafeURLError):
            check_address(address, allow_private=allow_private)
    else:
        check_address(address, allow_private=allow_private)


@pytest.mark.parametrize(
    "address",
    [
        "3fff::1",  # RFC 9637 documentation range (F8)
        "3fff:fff:ffff::1",
        "5f00::1",  # SRv6 SIDs
        "2001:db8::1",  # documentation
        "198.18.0.1",  # benchmarking
        "192.0.2.1",  # TEST-NET-1
        "240.0.0.1",
        "100::1",  # discard-only
        "64:ff9b::808:808",  # NAT64 of a public address: still a gateway
        "2002:808:808::1",  # 6to4
        "2001::1",  # Teredo
        "::808:808",  # IPv4-compatible (deprecated)
    ],
)
def test_only_global_unicast_addresses_pass(address):
    with pytest.raises(UnsafeURLError, match=r"private|not a public|special-purpose"):
        check_address(address, allow_private=False)


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "::ffff:169.254.169.254",  # IPv4-mapped
        "::ffff:a9fe:a9fe",
        "64:ff9b::a9fe:a9fe",  # NAT64, well-known prefix (F9)
        "64:ff9b::169.254.169.254",
        "64:ff9b:1::a9fe:a9fe",  # NAT64, local-use prefix
        "2002:a9fe:a9fe::",  # 6to4 (F9)
        "2002:a9fe:a9fe:1::5",
        "::a9fe:a9fe",  # IPv4-compatible (F9)
        "::169.254.169.254",
        "2001:0:a9fe:a9fe::1",  # Teredo, metadata as the server address
        "2001:0:4136:e378:8000:63bf:5601:5601",  # Teredo, 169.254.169.254 as the client
        "fd00:ec2::254",
        "::ffff:100.100.100.200",
        "64:ff9b::a9fe:aa02",  # ECS task metadata 169.254.170.2 through NAT64
    ],
)
@pytest.mark.parametrize("allow_private", [True, False])
def test_metadata_address_is_refused_in_every_ipv6_form(address, allow_private):
    with pytest.raises(UnsafeURLError, match="metadata"):
        check_address(address, allow_private=allow_private)


@pytest.mark.parametrize(
    "url",
    ["http://[64:ff9b::a9fe:a9fe]/", "http://[2002:a9fe:a9fe::]/", "http://[::a9fe:a9fe]/"],
)
def test_metadata_urls_in_ipv6_forms_are_refused_at_save_even_with_private_allowed(url):
    with pytest.raises(UnsafeURLError, match="metadata"):
        check_url(url, allow_private=True)


def test_rfc9637_url_is_refused_at_save():
    with pytest.raises(UnsafeURLError, match="private"):
        check_url("http://[3fff::1]/", allow_private=False)


@pytest.mark.parametrize(
    "address", ["64:ff9b::808:808", "2002:808:808::1", "::ffff:10.0.0.1", "3fff::1"]
)
def test_embedded_forms_of_ordinary_addresses_pass_when_private_targets_are_allowed(address):
    check_address(address, allow_private=True)
