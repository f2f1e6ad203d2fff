"""`allowed_outbound_hosts`: parsing entries and checking URLs against them (spin-spec §5.5). Pure.

Source: spinframework/spin crates/outbound-networking-config/src/allowed_hosts.rs. Hosts are compared
the way the `url` crate normalizes them (lower-case domains, IDNA, WHATWG IPv4 forms, bracketed IPv6).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from tauon.app.expressions import TemplateError, parse_template, render_template
from tauon.app.hosts import Host, default_port, host_text, parse_host, split_url
from tauon.errors import LoadError

SERVICE_CHAINING_SUFFIX = ".spin.internal"
_HINT = "entries look like 'https://api.example.com', 'http://*.example.com:8080' or '*://*:*'"

HostKind = Literal["any", "self", "subdomain", "literal", "cidr"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class AllowedHost:
    """One parsed entry."""

    original: str
    scheme: str | None
    """None for '*'."""
    host_kind: HostKind
    host: str
    """Normalized literal domain/IP, '.domain' for '*.domain', the network for a CIDR, else ''."""
    ports: tuple[int, int] | None
    """Allowed ports as [start, end), None for '*'."""
    network: Network | None = field(default=None, compare=False, repr=False)

    @property
    def is_for_service_chaining(self) -> bool:
        if self.host_kind == "subdomain":
            return self.host == SERVICE_CHAINING_SUFFIX
        return self.host_kind == "literal" and self.host.endswith(SERVICE_CHAINING_SUFFIX)

    def allows_scheme(self, scheme: str) -> bool:
        return self.scheme is None or self.scheme == scheme

    def allows_port(self, port: int | None, scheme: str) -> bool:
        if self.ports is None:
            return True
        port = port if port is not None else default_port(scheme)
        return port is not None and self.ports[0] <= port < self.ports[1]

    def allows_host(self, host: Host, component_ids: Sequence[str]) -> bool:
        kind, value = host
        if self.host_kind == "any":
            return True
        if self.host_kind == "subdomain":
            if kind != "domain":
                return False
            if self.host == SERVICE_CHAINING_SUFFIX:
                # Spin expands '*.spin.internal' to exactly the app's components.
                return any(value == c + SERVICE_CHAINING_SUFFIX for c in component_ids)
            return str(value).endswith(self.host)
        if self.host_kind == "literal":
            return host_text(host) == self.host
        if self.host_kind == "cidr" and self.network is not None and kind == "ip":
            return value in self.network
        return False  # 'self' only grants relative requests


def _fail(entry: str, rule: str) -> LoadError:
    return LoadError(f"invalid allowed_outbound_hosts entry {entry!r}: {rule}", hint=_HINT)


def _parse_port(port: str, scheme: str, entry: str) -> tuple[int, int] | None:
    if port == "":
        p = default_port(scheme)
        if p is None:
            raise _fail(entry, f"no port was given and the scheme {scheme!r} has no known default port")
        return (p, p + 1)
    if port == "*":
        return None
    if port.startswith("{"):
        raise _fail(entry, "port lists ({...}) are not supported")

    def number(text: str) -> int:
        if not (text.isascii() and text.isdigit()) or int(text) > 65535:
            raise _fail(entry, f"port {port!r} is not a port number (0-65535) or range 'a..b'")
        return int(text)

    if ".." in port:
        start, _, end = port.partition("..")
        return (number(start), number(end))
    p = number(port)
    return (p, p + 1)


def _parse_host_pattern(host: str, entry: str) -> tuple[HostKind, str, Network | None]:
    host = host.strip()
    if host == "*":
        return ("any", "", None)
    if host in ("self", "self.alt"):
        return ("self", "", None)
    if host.startswith("{"):
        raise _fail(entry, "host lists ({...}) are not supported")
    cidr = _parse_cidr(host)
    if cidr is not None:
        return ("cidr", str(cidr), cidr)
    host = host.removesuffix("/")
    if "/" in host:
        raise _fail(entry, "it must not include a path")
    try:
        if host.startswith("*."):
            domain = host[2:]
            if "*" in domain:
                raise _fail(entry, "'*' is allowed only as the first label ('*.example.com')")
            parsed = parse_host(domain)
            if parsed[0] != "domain":
                raise _fail(entry, "the part after '*.' must be a domain name, not an IP address")
            return ("subdomain", f".{parsed[1]}", None)
        if "*" in host:
            raise _fail(entry, "'*' is allowed only as a whole host or as a subdomain ('*.example.com')")
        return ("literal", host_text(parse_host(host)), None)
    except ValueError as e:
        raise _fail(entry, str(e)) from None


def _parse_cidr(host: str) -> Network | None:
    addr, sep, prefix = host.partition("/")
    if not sep or not (prefix.isascii() and prefix.isdigit()):
        return None
    try:
        return ipaddress.ip_network(f"{addr}/{int(prefix)}", strict=False)
    except ValueError:
        return None


def _is_host(text: str) -> bool:
    try:
        _parse_host_pattern(text, text)
    except LoadError:
        return False
    return True


def parse_allowed_host(entry: str) -> AllowedHost:
    """Parse one literal entry `<scheme>://<host>[:<port>]`. Raises LoadError naming the entry and rule."""
    text = entry.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        if text in ("*", ":", "", "?"):
            raise _fail(entry, "use '<scheme>://<host>[:<port>]'; '*://*:*' allows all outbound networking")
        raise _fail(entry, "it has no scheme (such as 'https://' or '*://')")
    host, colon, tail = rest.rpartition(":")
    if not colon:
        host, port = rest, ""
    elif tail == "":
        port = ""
    elif _is_host(rest):  # e.g. an IPv6 CIDR such as 'ff00::/8', whose last ':' is not a port
        host, port = rest, ""
    else:
        port, slash, path = tail.partition("/")
        if slash and path:
            raise _fail(entry, "it has a path, which is not allowed")
    if scheme != "*":
        if scheme.startswith("{"):
            raise _fail(entry, "scheme lists ({...}) are not supported")
        if not scheme or not scheme.isalpha():
            raise _fail(entry, f"the scheme {scheme!r} must be '*' or letters only")
    ports = _parse_port(port, scheme, entry)
    host_kind, host_value, network = _parse_host_pattern(host, entry)
    return AllowedHost(entry, None if scheme == "*" else scheme, host_kind, host_value, ports, network)


@dataclass(frozen=True, slots=True)
class AllowedHosts:
    """A component's parsed `allowed_outbound_hosts`. Empty: no outbound networking at all."""

    entries: tuple[AllowedHost, ...]
    component_ids: tuple[str, ...] = ()
    """The app's components, which '*.spin.internal' stands for."""
    _decided: dict[tuple[str, str, int | None], bool] = field(default_factory=dict, compare=False,
                                                              hash=False, repr=False)
    """allows() by (scheme, host, port): every outbound request repeats the same check, and parsing the
    host was a fifth of a pooled request's client CPU. Bounded (cleared when full)."""

    def allows(self, url: str, default_scheme: str = "https") -> bool:
        """True if some entry allows the URL's scheme, host and port (explicit or the scheme's default).

        A URL without a scheme is read as `<default_scheme>://<url>`; an unparsable URL is denied.
        """
        parts = split_url(url) or split_url(f"{default_scheme}://{url}")
        if parts is None:
            return False
        decided = self._decided.get(parts)
        if decided is None:
            if len(self._decided) >= 1024:  # guests choose the URLs: keep it bounded
                self._decided.clear()
            decided = self._decided[parts] = self._allows(*parts)
        return decided

    def _allows(self, scheme: str, host_text: str, port: int | None) -> bool:
        try:
            host = parse_host(host_text)
        except ValueError:
            return False
        return any(
            e.allows_scheme(scheme)
            and e.allows_host(host, self.component_ids)
            and e.allows_port(port, scheme)
            for e in self.entries
        )

    def allows_relative(self, schemes: Sequence[str]) -> bool:
        """True if self-directed requests (relative URLs, 'self.alt') are allowed for any scheme given."""
        return any(
            e.host_kind in ("any", "self") and any(e.allows_scheme(s) for s in schemes) for e in self.entries
        )


def _check_allow_all(entries: Sequence[str]) -> None:
    if len(entries) == 1 and entries[0] == "insecure:allow-all":
        raise _fail(entries[0], "it is not allowed; use '*://*:*' to allow all outbound traffic")


def _template_parts(entry: str) -> tuple[tuple[bool, str], ...]:
    try:
        return parse_template(entry)
    except TemplateError as e:
        raise _fail(entry, str(e)) from None


def _skip_resolved(resolved: str) -> bool:
    # An empty variable yields an "optional endpoint" that Spin silently drops.
    return resolved in ("", "http://", "https://")


def parse_allowed_hosts(
    entries: Sequence[str],
    *,
    resolve: Callable[[str], str] | None = None,
    component_ids: Sequence[str] = (),
) -> AllowedHosts:
    """Parse a component's entries, rendering `{{ variable }}` templates with `resolve`.

    Raises LoadError for a bad entry, or for a template entry when no `resolve` is given.
    """
    _check_allow_all(entries)
    parsed: list[AllowedHost] = []
    for entry in entries:
        if not any(is_expr for is_expr, _ in _template_parts(entry)):
            parsed.append(parse_allowed_host(entry))
            continue
        if resolve is None:
            raise _fail(entry, "it uses variables, which must be resolved first")
        resolved = render_template(entry, resolve)
        if not _skip_resolved(resolved):
            parsed.append(parse_allowed_host(resolved))
    return AllowedHosts(tuple(parsed), tuple(component_ids))


def validate_allowed_hosts(entries: Sequence[str], *, defaults: Mapping[str, str | None]) -> None:
    """Load-time check: literal entries must parse; templated ones too when every variable they use
    has a default (`defaults`: app variable -> default or None). Raises LoadError."""
    _check_allow_all(entries)
    for entry in entries:
        names = [text for is_expr, text in _template_parts(entry) if is_expr]
        if not names:
            parse_allowed_host(entry)
            continue
        if not all(defaults.get(n) is not None for n in names):
            continue  # a provider may supply it at run time; checked then
        resolved = render_template(entry, lambda n: defaults[n] or "")
        if _skip_resolved(resolved):
            continue
        try:
            parse_allowed_host(resolved)
        except LoadError as e:
            raise _fail(
                entry, f"with default variable values it becomes {resolved!r}, which is invalid: {e.message}"
            ) from None


def convert_allowed_http_hosts(hosts: Sequence[str]) -> list[str]:
    """Spin 1.x `allowed_http_hosts` as `allowed_outbound_hosts` entries; [] if any entry is invalid.

    Spin converts this legacy component metadata key at run time and silently ignores a bad list.
    """
    if "insecure:allow-all" in hosts:
        return ["http://*:*", "https://*:*", "http://self"]
    converted: list[str] = []
    for text in hosts:
        parts = split_url(text if "//" in text else f"http://{text}")
        if parts is None or parts[0] not in ("http", "https"):
            return []
        scheme, host_raw, port = parts
        try:
            host = host_text(parse_host(host_raw))
        except ValueError:
            return []
        rest = re.split(r"[?#]", text.split("//", 1)[-1], maxsplit=1)[0]
        if "/" in rest and rest[rest.index("/") :] != "/":
            return []  # a path other than '/'
        if host == "self":
            converted.append("http://self")
            continue
        # The url crate hides a port equal to the scheme's default, so Spin drops it too.
        suffix = f":{port}" if port is not None and port != default_port(scheme) else ""
        converted += [f"http://{host}{suffix}", f"https://{host}{suffix}"]
    return converted
