"""Where events may be sent: no loopback, private, link-local or metadata addresses.

Checked when a subscription is made and again at every connection: the host
is resolved once, every address it resolves to must be public, and the
connection goes to that checked address (see `transport`), so a DNS answer
that changes between the check and the connect (rebinding) cannot redirect it.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
_BLOCKED_NAMES = ("localhost", "metadata", "metadata.google.internal")


class UnsafeDestination(ValueError):
    """The URL may not receive events; the message says why."""


class Unresolvable(UnsafeDestination):
    """The host has no address (now)."""


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str  # as written, lower case, without brackets
    port: int
    path: str  # path and query


def parse_url(url: object, *, https_only: bool) -> Destination:
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise UnsafeDestination(f"must be a URL of at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise UnsafeDestination("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeDestination("is not a valid URL") from None
    allowed = ("https",) if https_only else ("https", "http")
    if parts.scheme not in allowed:
        raise UnsafeDestination("must be an " + " or ".join(allowed) + " URL")
    if not parts.hostname:
        raise UnsafeDestination("must name a host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeDestination("must not carry credentials")
    if parts.fragment:
        raise UnsafeDestination("must not have a fragment")
    if port == 0:
        raise UnsafeDestination("must have a port from 1 to 65535")
    host = parts.hostname.lower().rstrip(".")
    if "%" in host:
        raise UnsafeDestination("must not carry an IPv6 zone id")
    host = _ascii_host(host)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Destination(parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path)


def _ascii_host(host: str) -> str:
    """An international name in its IDNA (`xn--`) form: what DNS, SNI, the
    certificate and the `Host` header all use (http.client cannot send it raw)."""
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise UnsafeDestination("must name a valid host") from None


# NAT64: the well-known prefix carries an IPv4 address in its last 32 bits (RFC 6052);
# the local-use one is never a public destination.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")


def forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Anything but a public unicast address (loopback, private, link-local, metadata, ...).

    An IPv6 address that carries an IPv4 one to reach (mapped, NAT64, 6to4) is
    judged by that IPv4 address: `64:ff9b::7f00:1` is 127.0.0.1 through a NAT64
    gateway, though Python calls it global. The rest of the reserved `::/8` (the
    deprecated IPv4-compatible `::127.0.0.1` among them) is refused outright.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address in _NAT64:  # inside ::/8, so before the reserved check
            return forbidden(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        elif address.is_reserved or address in _LOCAL_NAT64:
            return True
        elif address.sixtofour is not None and forbidden(address.sixtofour):
            return True
    return not address.is_global or address.is_multicast or address.is_unspecified


def _blocked_name(host: str) -> bool:
    return host in _BLOCKED_NAMES or host.endswith(".localhost")


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def resolve(destination: Destination, *, allow_private: bool) -> str:
    """The one address to connect to; every address the host resolves to is checked."""
    if not allow_private and _blocked_name(destination.host):
        raise UnsafeDestination("resolves to a loopback or metadata address")
    literal = _ip_literal(destination.host)
    if literal is not None:
        # An address needs no DNS: judged as written, never "unresolvable".
        if not allow_private and forbidden(literal):
            raise UnsafeDestination("is a loopback, private, link-local or metadata address")
        return str(literal)
    try:
        infos = socket.getaddrinfo(
            destination.host, destination.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (OSError, UnicodeError):
        raise Unresolvable("the host does not resolve") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not addresses:
        raise Unresolvable("the host does not resolve")
    if not allow_private and any(forbidden(address) for address in addresses):
        raise UnsafeDestination("resolves to a loopback, private, link-local or metadata address")
    # IPv4 first: `localhost` often resolves to ::1 first while local receivers bind 127.0.0.1.
    return str(min(addresses, key=lambda address: address.version))


def check_subscription_url(url: object, *, https_only: bool, allow_private: bool) -> Destination:
    """At subscribe time: the URL's form, and its addresses if the host resolves now.

    A host that does not resolve yet is accepted: every delivery resolves and
    checks it again before connecting.
    """
    destination = parse_url(url, https_only=https_only)
    try:
        resolve(destination, allow_private=allow_private)
    except Unresolvable:
        pass
    return destination
