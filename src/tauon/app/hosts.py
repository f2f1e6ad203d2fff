"""Hosts as Spin's allowed-hosts code compares them: parsing a host the way the `url` crate normalizes
it (lower-case domains, IDNA, WHATWG IPv4 forms, bracketed IPv6), default ports, and the scheme, host
and port of a URL. Pure."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal
from urllib.parse import unquote

_DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306, "redis": 6379, "mqtt": 1883, "http": 80, "https": 443}
_SPECIAL_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp"})
_FORBIDDEN = frozenset("\x00\t\n\r #/:<>?@[\\]^|%\x7f") | frozenset(chr(i) for i in range(0x20))

Host = tuple[Literal["domain"], str] | tuple[Literal["ip"], ipaddress.IPv4Address | ipaddress.IPv6Address]


def default_port(scheme: str) -> int | None:
    return _DEFAULT_PORTS.get(scheme)


def _ipv4_number(part: str) -> int | None:
    """One WHATWG IPv4 number: decimal, 0x-hex or 0-octal; None if it is not a number."""
    radix = 10
    if part[:2] in ("0x", "0X"):
        part, radix = part[2:], 16
    elif len(part) > 1 and part.startswith("0"):
        part, radix = part[1:], 8
    if part == "":
        return 0
    try:
        return int(part, radix) if part.isascii() and part.isalnum() else None
    except ValueError:
        return None


def _ends_in_number(parts: list[str]) -> bool:
    last = parts[-1]
    if last.isascii() and last.isdigit():
        return True
    return last[:2] in ("0x", "0X") and _ipv4_number(last) is not None


def _parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The WHATWG IPv4 parser if the host 'ends in a number'; None if it is a domain. Raises ValueError."""
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if not _ends_in_number(parts):
        return None
    numbers = [_ipv4_number(p) if p else None for p in parts]
    nums = [n for n in numbers if n is not None]
    if len(parts) > 4 or len(nums) != len(parts):
        raise ValueError(f"invalid IPv4 address {host!r}")
    if any(n > 255 for n in nums[:-1]) or nums[-1] >= 256 ** (5 - len(nums)):
        raise ValueError(f"invalid IPv4 address {host!r}")
    value = nums[-1] + sum(n * 256 ** (3 - i) for i, n in enumerate(nums[:-1]))
    return ipaddress.IPv4Address(value)


def parse_host(text: str) -> Host:
    """The `url` crate's Host::parse: a normalized domain or an IP. Raises ValueError."""
    if text.startswith("["):
        inner = text[1:-1] if text.endswith("]") else ""
        try:
            if "%" in inner:
                raise ValueError
            return ("ip", ipaddress.IPv6Address(inner))
        except ValueError:
            raise ValueError(f"invalid IPv6 address {text!r}") from None
    if not text:
        raise ValueError("empty host")
    decoded = unquote(text, errors="replace")
    try:
        ascii_host = ".".join(
            label.lower() if label.isascii() else label.encode("idna").decode("ascii")
            for label in decoded.split(".")
        )
    except UnicodeError:
        raise ValueError(f"invalid international domain name {text!r}") from None
    bad = sorted({c for c in ascii_host if c in _FORBIDDEN})
    if bad or not ascii_host:
        raise ValueError(f"invalid character(s) {''.join(bad)!r} in host {text!r}")
    ip = _parse_ipv4(ascii_host)
    return ("ip", ip) if ip is not None else ("domain", ascii_host)


def host_text(host: Host) -> str:
    """A parsed host as text: the domain, the IPv4 address, or the IPv6 address in brackets."""
    kind, value = host
    if kind == "ip" and isinstance(value, ipaddress.IPv6Address):
        return f"[{value}]"
    return str(value)


_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")


def split_url(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, explicit port) of an absolute URL with an authority, else None."""
    m = _SCHEME_RE.match(url)
    if m is None:
        return None
    scheme = m.group(1).lower()
    rest = url[m.end() :]
    if scheme in _SPECIAL_SCHEMES:
        rest = rest.lstrip("/\\")
    elif rest.startswith("//"):
        rest = rest[2:]
    else:
        return None
    # Like Spin, treat everything up to the first '@' before the path as user info, even '#'.
    at, path_start = rest.find("@"), rest.find("/")
    if at >= 0 and (path_start < 0 or at < path_start):
        rest = rest[at + 1 :]
    authority = re.split(r"[/?#\\]" if scheme in _SPECIAL_SCHEMES else r"[/?#]", rest, maxsplit=1)[0]
    authority = authority.rpartition("@")[2]
    if authority.startswith("["):
        close = authority.find("]")
        host, after = (authority[: close + 1], authority[close + 1 :]) if close >= 0 else (authority, "")
        if after and not after.startswith(":"):
            return None
        port_text = after[1:]
    else:
        host, _, port_text = authority.partition(":")
    if not host:
        return None
    if port_text == "":
        return scheme, host, None
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        return None
    return scheme, host, int(port_text)
