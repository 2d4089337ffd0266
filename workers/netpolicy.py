"""Pure rules for which URLs and addresses a chat user may make colabot fetch.

By default nothing on this machine, the local network or link-local ranges can be fetched:
a chat message must not become a way to read internal endpoints (cloud metadata services,
admin pages, the Bot API server itself).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from workers.errors import InputError

SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class FetchPolicy:
    """Limits on fetching from URLs, from the ``[inputs]`` settings."""

    max_bytes: int = 5000 * 1024 * 1024
    allowed_hosts: tuple[str, ...] = ()
    allow_private: bool = False
    timeout_s: float = 60.0
    retry_delay_s: float = 0.5


def check_url(url: str, policy: FetchPolicy) -> str:
    """Check a URL's form and host before anything is fetched; return its host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InputError(url, f"only http and https URLs can be fetched, not {parts.scheme}:")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise InputError(url, "the URL has no host")
    if parts.username or parts.password:
        raise InputError(url, "URLs with a user name or password are not accepted")
    if policy.allowed_hosts and not host_allowed(host, policy.allowed_hosts):
        allowed = ", ".join(policy.allowed_hosts)
        raise InputError(url, f"{host} is not in inputs.allowed_url_hosts ({allowed})")
    if not policy.allow_private:
        if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
            raise InputError(url, f"{host} is a local address; fetching it is not allowed")
        literal = _ip_literal(host)
        if literal is not None:
            check_address(literal, url, policy)
    return host


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """``data.example.org`` matches ``example.org`` and ``data.example.org``."""
    return any(host == a.lower() or host.endswith("." + a.lower()) for a in allowed)


def _ip_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def is_private_address(address: str) -> bool:
    """True for loopback, private, link-local, reserved, multicast and unspecified addresses."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or not ip.is_global
    )


def check_address(address: str, url: str, policy: FetchPolicy) -> None:
    """Refuse an address the URL resolved to when it is internal (unless allowed)."""
    if not policy.allow_private and is_private_address(address):
        raise InputError(
            url,
            f"it points at {address}, an address on this machine or a private network; "
            "fetching it is not allowed (inputs.allow_private_addresses)",
        )


def filename_for(url: str, content_disposition: str | None) -> str:
    """A safe local file name from Content-Disposition or the URL's path."""
    name = ""
    if content_disposition:
        match = re.search(r"filename\*=(?:UTF-8'')?([^;]+)", content_disposition, re.I)
        match = match or re.search(r'filename="?([^";]+)"?', content_disposition, re.I)
        if match:
            name = unquote(match.group(1).strip().strip('"'))
    if not name:
        name = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    name = SAFE_NAME.sub("_", name.replace("\\", "/").rsplit("/", 1)[-1]).strip("._")
    return name[:150] or "download"
