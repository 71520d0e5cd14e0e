"""Which outbound webhook targets are allowed (SPEC §5).

Pure: no Django, no network. The same two checks run when an endpoint is saved
(`check_url`, on the literal URL) and at send time on the address DNS returned
(`check_address`), so a hostname that later resolves to a private address is still
refused before a connection is made.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

# Cloud metadata services: refused even when private targets are allowed, because a
# request there hands out the host's credentials.
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, DigitalOcean, ...
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("fd00:ec2::254"),  # AWS IMDS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)
METADATA_HOSTNAMES = frozenset({"metadata.google.internal", "metadata"})
LOCAL_HOSTNAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
# Ranges to refuse besides what `ipaddress` does not call global: some Python versions
# predate the newest special-purpose registrations, and these route to internal hosts.
EXTRA_BLOCKED_NETWORKS = (
    ipaddress.ip_network("100.64.0.0/10"),  # carrier-grade NAT
    ipaddress.ip_network("192.0.0.0/24"),
    ipaddress.ip_network("192.88.99.0/24"),  # 6to4 relay anycast
    ipaddress.ip_network("64:ff9b::/96"),  # NAT64 (RFC 6052)
    ipaddress.ip_network("64:ff9b:1::/48"),  # local-use NAT64 (RFC 8215)
    ipaddress.ip_network("2002::/16"),  # 6to4 (RFC 3056)
    ipaddress.ip_network("2001::/32"),  # Teredo (RFC 4380)
    ipaddress.ip_network("3fff::/20"),  # documentation (RFC 9637)
    ipaddress.ip_network("5f00::/16"),  # SRv6 SIDs (RFC 9602)
)
# IPv6 forms that carry an IPv4 address a gateway may connect to (SPEC §5: a metadata
# address must be refused in any of them, even when private targets are allowed).
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
MAX_URL_LENGTH = 2000


class UnsafeURLError(ValueError):
    """The URL or the address it resolves to is not an allowed webhook target."""


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: IPv4-mapped, IPv4-compatible, 6to4,
    NAT64 (well-known and local-use prefixes) and Teredo (server and client)."""
    found = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if any(ip in net for net in _NAT64) or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def check_address(address: str, *, allow_private: bool) -> None:
    """Refuse an IP address webhook traffic must not reach.

    Unless `allow_private`, only global unicast addresses pass: loopback, private,
    link-local, multicast, reserved, unspecified and every other special-purpose range
    (anything `ipaddress` does not call global, plus `EXTRA_BLOCKED_NETWORKS`) are
    refused. Metadata addresses are refused always, also when embedded in an IPv6 form.
    """
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    except ValueError:
        raise UnsafeURLError(f"{address!r} is not an IP address") from None
    embedded = embedded_ipv4(ip) if ip.version == 6 else []
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for candidate in (ip, *embedded):
        if candidate in METADATA_ADDRESSES:
            raise UnsafeURLError(f"{address} is a cloud metadata address")
    if allow_private:
        return
    if ip.is_loopback:
        raise UnsafeURLError(f"{ip} is a loopback address")
    if ip.is_link_local:
        raise UnsafeURLError(f"{ip} is a link-local address")
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        raise UnsafeURLError(f"{ip} is not a public unicast address")
    if ip.is_private or any(ip in net for net in EXTRA_BLOCKED_NETWORKS):
        raise UnsafeURLError(f"{ip} is a private address")
    if not ip.is_global:
        raise UnsafeURLError(f"{ip} is in a special-purpose range, not a public address")
    for inner in embedded:  # e.g. a NAT64 gateway would dial this IPv4 address
        if not inner.is_global:
            raise UnsafeURLError(f"{address} embeds {inner}, which is not a public address")


def check_url(url: str, *, allow_private: bool, require_https: bool = False) -> None:
    """Refuse a URL that is not an http(s) URL to an allowed host.

    Host names are checked by name here (``localhost``, metadata names); their
    addresses are checked again by `check_address` after resolution at send time.
    """
    if not isinstance(url, str) or not url:
        raise UnsafeURLError("Enter a URL.")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURLError(f"URL is longer than {MAX_URL_LENGTH} characters.")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise UnsafeURLError("URL contains whitespace or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURLError(f"URL is malformed: {exc}.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeURLError("URL must start with http:// or https://.")
    if require_https and scheme != "https":
        raise UnsafeURLError("URL must use https://.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURLError("URL must not contain a user name or password.")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeURLError("URL has no host.")
    if port == 0:
        raise UnsafeURLError("URL has an invalid port.")
    if host in METADATA_HOSTNAMES:
        raise UnsafeURLError(f"{host} is a cloud metadata host")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        check_address(host, allow_private=allow_private)
        return
    if not allow_private and (host in LOCAL_HOSTNAMES or host.endswith(".localhost")):
        raise UnsafeURLError(f"{host} is a loopback host")
    if not all(label and len(label) <= 63 for label in host.split(".")):
        raise UnsafeURLError(f"{host!r} is not a valid host name")
