"""Pure rules for which URLs and addresses a chat user may make colabot fetch.

By default nothing on this machine, the local network or link-local ranges can be fetched:
a chat message must not become a way to read internal endpoints (cloud metadata services,
admin pages, the Bot API server itself).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import yarl

from workers.errors import InputError
from workers.safety.names import safe_name

# Cloud metadata services hand out credentials to whoever asks from the machine: they are
# refused even with inputs.allow_private_addresses, unless inputs.allowed_networks names the
# address itself (a /32 or /128).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, ...
        "169.254.170.2",  # AWS ECS task credentials
        "169.254.169.123",  # AWS time service
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS over IPv6
        "fd00:ec2::123",
    )
)
METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.com",
        "metadata.tencentyun.com",
    }
)
LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa")
MB = 1024 * 1024

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class FetchPolicy:
    """``[inputs]``: limits on inputs fetched from URLs and Drive links (the loader in
    :mod:`bot.config` builds it and checks ``allowed_networks``)."""

    max_download_mb: float = 5000.0
    allowed_url_hosts: tuple[str, ...] = ()
    allow_private_addresses: bool = False
    allowed_networks: tuple[str, ...] = ()
    timeout_seconds: float = 60.0

    @property
    def max_bytes(self) -> int:
        """``max_download_mb`` in bytes."""
        return int(self.max_download_mb * MB)

    @property
    def networks(self) -> tuple[Network, ...]:
        """``allowed_networks`` parsed (validated at start-up)."""
        return tuple(ipaddress.ip_network(n, strict=False) for n in self.allowed_networks)


def connect_host(url: str) -> str:
    """The host exactly as the HTTP client connects to it: IDNA-encoded, lowercase.

    Look-alike characters are normalised here, the way the client does it: ``127。0。0。1``
    and ``１２７．０．０．１`` both become ``127.0.0.1``.
    """
    try:
        host = yarl.URL(url).raw_host or ""
    except (ValueError, UnicodeError) as exc:
        raise InputError(url, f"the host name is not valid ({exc})") from None
    return host.lower().rstrip(".")


def numeric_address(host: str) -> Address | None:
    """The IP address a host stands for when it is one, in any form the resolver accepts:
    ``127.0.0.1``, ``::1``, and the shorthand ``2130706433``, ``0177.0.0.1``, ``0x7f000001``,
    ``127.1``."""
    bare = host.strip("[]")
    try:
        return _unmapped(ipaddress.ip_address(bare))
    except ValueError:
        pass
    if not re.fullmatch(r"[0-9a-fA-FxX.]+", bare) or not re.match(r"[0-9]", bare):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(bare))
    except OSError:
        return None


def is_loopback_url(url: str) -> bool:
    """Whether a URL's host, exactly as the client connects to it, is this machine's
    loopback (``localhost``, ``127.0.0.1`` in any spelling, ``::1``)."""
    try:
        host = connect_host(url)
    except InputError:
        return False
    if host == "localhost":
        return True
    address = numeric_address(host)
    return address is not None and address.is_loopback


def check_url(url: str, policy: FetchPolicy) -> str:
    """Check a URL's form and host before anything is fetched; return the host it connects to.

    The host is checked as the client will connect to it. A host that is an IP address in
    another form than the plain one (look-alike characters, decimal, octal or hex) is
    refused: an internal one as internal, any other as disguised.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InputError(url, f"only http and https URLs can be fetched, not {parts.scheme}:")
    if not parts.hostname:
        raise InputError(url, "the URL has no host")
    if parts.username or parts.password:
        raise InputError(url, "URLs with a user name or password are not accepted")
    host = connect_host(url)
    if not host:
        raise InputError(url, "the URL has no host")
    typed = parts.hostname.lower().rstrip(".")
    address = numeric_address(host)
    if address is not None:
        check_address(str(address), url, policy)
        if str(address) not in (host.strip("[]"), typed) or host.strip("[]") != typed:
            raise InputError(
                url,
                f"its host is the IP address {address} written in another form; "
                f"write it as {address}",
            )
    elif host in METADATA_HOSTS:
        if not _named(policy, METADATA_ADDRESSES):
            raise InputError(url, f"{host} is a cloud metadata service; fetching it is not allowed")
    elif not policy.allow_private_addresses and (
        host == "localhost" or host.endswith(LOCAL_SUFFIXES)
    ):
        raise InputError(url, f"{host} is a local address; fetching it is not allowed")
    if policy.allowed_url_hosts and not host_allowed(host, policy.allowed_url_hosts):
        allowed = ", ".join(policy.allowed_url_hosts)
        raise InputError(url, f"{host} is not in inputs.allowed_url_hosts ({allowed})")
    return host


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """``data.example.org`` matches ``example.org`` and ``data.example.org``."""
    return any(host == a.lower() or host.endswith("." + a.lower()) for a in allowed)


def _unmapped(ip: Address) -> Address:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_private_address(address: str) -> bool:
    """True for loopback, private, link-local, reserved, multicast and unspecified addresses."""
    ip = _unmapped(ipaddress.ip_address(address))
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or not ip.is_global
    )


def _named(policy: FetchPolicy, addresses: frozenset[Address]) -> bool:
    """Whether ``allowed_networks`` names one of these addresses on its own (a /32 or /128)."""
    return any(net.num_addresses == 1 and net[0] in addresses for net in policy.networks)


def check_address(address: str, url: str, policy: FetchPolicy) -> None:
    """Refuse an address the URL points at (or resolved to) when it is internal.

    Metadata services are refused unless ``allowed_networks`` names the address itself;
    ``allowed_networks`` opens its ranges; ``allow_private_addresses`` opens every other
    internal address.
    """
    ip = _unmapped(ipaddress.ip_address(address))
    if ip in METADATA_ADDRESSES:
        if _named(policy, frozenset({ip})):
            return
        raise InputError(
            url,
            f"it points at {ip}, a cloud metadata service; fetching it is not allowed unless "
            "inputs.allowed_networks names that address",
        )
    if any(ip in network for network in policy.networks):
        return
    if not policy.allow_private_addresses and is_private_address(str(ip)):
        raise InputError(
            url,
            f"it points at {ip}, an address on this machine or a private network; "
            "fetching it is not allowed (see inputs.allowed_networks)",
        )


def filename_for(url: str, offered: str | None) -> str:
    """A safe local file name: the one the server offered (Content-Disposition, as aiohttp
    reads it), else the last part of the URL's path."""
    name = offered or unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    return safe_name(name, "download")
