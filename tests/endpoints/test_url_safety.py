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
