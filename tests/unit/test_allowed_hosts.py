"""`allowed_outbound_hosts` parsing and matching (spin-spec §5.5)."""

from __future__ import annotations

import pytest

from tauon.app.allowed_hosts import (
    AllowedHosts,
    convert_allowed_http_hosts,
    parse_allowed_host,
    parse_allowed_hosts,
    validate_allowed_hosts,
)
from tauon.app.hosts import parse_host
from tauon.errors import LoadError


@pytest.mark.parametrize(
    ("entry", "scheme", "kind", "host", "ports"),
    [
        ("http://spin.fermyon.dev", "http", "literal", "spin.fermyon.dev", (80, 81)),
        ("http://spin.fermyon.dev/", "http", "literal", "spin.fermyon.dev", (80, 81)),
        ("https://spin.fermyon.dev", "https", "literal", "spin.fermyon.dev", (443, 444)),
        ("http://spin.fermyon.dev:4444", "http", "literal", "spin.fermyon.dev", (4444, 4445)),
        ("http://spin.fermyon.dev:4444/", "http", "literal", "spin.fermyon.dev", (4444, 4445)),
        ("http://spin.fermyon.dev:4444..5555", "http", "literal", "spin.fermyon.dev", (4444, 5555)),
        ("*://spin.fermyon.dev:7777", None, "literal", "spin.fermyon.dev", (7777, 7778)),
        ("  http://padded.dev  ", "http", "literal", "padded.dev", (80, 81)),
        ("redis://cache", "redis", "literal", "cache", (6379, 6380)),
        ("postgres://db", "postgres", "literal", "db", (5432, 5433)),
        ("mysql://db", "mysql", "literal", "db", (3306, 3307)),
        ("mqtt://broker", "mqtt", "literal", "broker", (1883, 1884)),
        ("tcp://x:1", "tcp", "literal", "x", (1, 2)),
        ("http://self", "http", "self", "", (80, 81)),
        ("https://self.alt", "https", "self", "", (443, 444)),
        ("http://localhost:3001", "http", "literal", "localhost", (3001, 3002)),
        ("http://*.example.com", "http", "subdomain", ".example.com", (80, 81)),
        ("http://*.Example.COM", "http", "subdomain", ".example.com", (80, 81)),
        ("http://EXAMPLE.com", "http", "literal", "example.com", (80, 81)),
        ("http://192.168.1.1:3002", "http", "literal", "192.168.1.1", (3002, 3003)),
        ("http://[::1]", "http", "literal", "[::1]", (80, 81)),
        ("http://[::1]:8001", "http", "literal", "[::1]", (8001, 8002)),
        ("http://[::1]:*", "http", "literal", "[::1]", None),
        ("http://[::1]:8000..9000", "http", "literal", "[::1]", (8000, 9000)),
        ("http://[::1]:8080/", "http", "literal", "[::1]", (8080, 8081)),
        ("*://127.0.0.0/24:80", None, "cidr", "127.0.0.0/24", (80, 81)),
        ("*://127.0.0.1/24:63551", None, "cidr", "127.0.0.0/24", (63551, 63552)),  # host bits dropped
        ("*://ff00::/8:80", None, "cidr", "ff00::/8", (80, 81)),
        ("http://ff00::/8", "http", "cidr", "ff00::/8", (80, 81)),
        ("https://2001:db8::/32", "https", "cidr", "2001:db8::/32", (443, 444)),
        ("http://2001:db8::/32:443", "http", "cidr", "2001:db8::/32", (443, 444)),
        ("http://10.0.0.0/8", "http", "cidr", "10.0.0.0/8", (80, 81)),
        ("*://*:*", None, "any", "", None),
        ("http://*.spin.internal", "http", "subdomain", ".spin.internal", (80, 81)),
        ("http://api.spin.internal", "http", "literal", "api.spin.internal", (80, 81)),
        ("http://0x7f.1", "http", "literal", "127.0.0.1", (80, 81)),  # WHATWG IPv4 forms
    ],
)
def test_parse_valid(
    entry: str, scheme: str | None, kind: str, host: str, ports: tuple[int, int] | None
) -> None:
    h = parse_allowed_host(entry)
    assert (h.scheme, h.host_kind, h.host, h.ports) == (scheme, kind, host, ports)


@pytest.mark.parametrize(
    ("entry", "rule"),
    [
        ("spin.fermyon.dev", "no scheme"),
        ("example.com:8080", "no scheme"),
        ("[::1]:8080", "no scheme"),
        ("*", "'*://*:*' allows all"),
        ("", "'*://*:*' allows all"),
        ("*://127.0.0.0/24", "no known default port"),
        ("foo://x", "scheme 'foo' has no known default port"),
        ("h2c://x:1", "letters only"),
        ("://x:1", "letters only"),
        ("{http,https}://x", "scheme lists"),
        ("http://{a,b}", "host lists"),
        ("http://x:{80,443}", "port lists"),
        ("http://spin.fermyon.dev/a", "path"),
        ("http://spin.fermyon.dev:6666/a/b", "path"),
        ("http://*.fermyon.dev/a", "path"),
        ("http://[::1]/foo", "path"),
        ("http://ff00::/8/extra", "path"),
        ("http://127.0.0.0/24/p", "path"),
        ("http://example.com//", "path"),
        ("http://self//", "path"),
        ("http://[::1]//", "path"),
        ("http://example.com:notaport", "not a port number"),
        ("http://example.com:99999", "port '99999' is not a port number"),
        ("http://[::1]:99999", "not a port number"),
        ("http://ff00::/8:99999", "not a port number"),
        ("http://example.com:8080..70000", "not a port number"),
        ("http://*.example.com:8080..", "not a port number"),
        ("http://*.example.com:8O8O", "not a port number"),
        ("http://self:notaport", "not a port number"),
        ("http://[::1junk", "not a port number"),
        ("http://[v1.]", "invalid IPv6"),
        ("http://[::1]::80", "invalid IPv6"),
        ("http://*.", "empty host"),
        ("http://*.:8080", "empty host"),
        ("http://example%.com", "invalid character"),
        ("http://example%GG.com", "invalid character"),
        ("http://exa[mple.com", "invalid character"),
        ("http://exa\\mple.com", "invalid character"),
        ("http://example.com:80:90", "invalid character"),
        ("http://zootle! wurdl!", "invalid character"),
        ("http://*.127.0.0.1", "must be a domain name"),
        ("http://*.192.168.001.001", "must be a domain name"),
        ("http://*.a*.com", "only as the first label"),
        ("http://a.*.com", "as a subdomain"),
        ("http://a*b.com", "as a subdomain"),
        ("http://256.1.1.1", "invalid IPv4"),
        ("http://1.2.3.4.5", "invalid IPv4"),
    ],
)
def test_parse_invalid_names_entry_and_rule(entry: str, rule: str) -> None:
    with pytest.raises(LoadError) as info:
        parse_allowed_host(entry)
    assert rule in info.value.message
    assert repr(entry) in info.value.message


def test_insecure_allow_all_alone_is_rejected() -> None:
    with pytest.raises(LoadError, match=r"\*://\*:\*"):
        parse_allowed_hosts(["insecure:allow-all"])
    with pytest.raises(LoadError, match="no scheme"):
        parse_allowed_hosts(["https://x", "insecure:allow-all"])


def allowed(*entries: str, components: tuple[str, ...] = ()) -> AllowedHosts:
    return parse_allowed_hosts(list(entries), component_ids=components)


# (entries, url, allowed?)
ALLOWS_TABLE: list[tuple[tuple[str, ...], str, bool]] = [
    (("*://spin.fermyon.dev:443", "http://example.com:8383"), "http://example.com:8383/foo/bar", True),
    (("*://spin.fermyon.dev:443", "http://example.com:8383"), "https://spin.fermyon.dev", True),
    (("*://spin.fermyon.dev:443", "http://example.com:8383"), "https://spin.fermyon.dev/", True),
    (("*://spin.fermyon.dev:443", "http://example.com:8383"), "http://example.com/", False),
    (("*://spin.fermyon.dev:443", "http://example.com:8383"), "http://google.com/", False),
    (("*://spin.fermyon.dev:443", "http://example.com:8383"), "spin.fermyon.dev:443", True),  # no scheme
    (("http://example.com:8383",), "example.com:8383", False),  # read as https://
    (("https://example.com",), "example.com", True),
    (("https://my.api.com/",), "https://my.api.com", True),
    (("http://*.example.com", "http://*.example2.com:8383"), "http://a.example.com/foo", True),
    (("http://*.example.com", "http://*.example2.com:8383"), "http://a.b.example.com/foo", True),
    (("http://*.example.com", "http://*.example2.com:8383"), "http://a.b.example2.com:8383/x", True),
    (("http://*.example.com", "http://*.example2.com:8383"), "http://a.b.example2.com/x", False),
    (("http://*.example.com", "http://*.example2.com:8383"), "http://example.com/foo", False),
    (("http://*.example.com", "http://*.example2.com:8383"), "http://myexample.com/foo", False),
    (("http://*.Example.COM",), "http://FOO.example.com", True),
    (("mysql://xyz.com",), "mysql://user:pass#word@xyz.com", True),
    (("mysql://xyz.com",), "mysql://user%3Apass%23word@xyz.com", True),
    (("https://example.com",), "https://example.com/file@0.1.0.json", True),
    (("https://example.com",), "https://u:p@example.com/file@0.1.0.json", True),
    (("https://example.com",), "https://evil.com/@example.com", False),
    (("*://127.0.0.1/24:63551",), "tcp://127.0.0.1:63551", True),
    (("*://127.0.0.1/24:63551",), "tcp://127.0.1.1:63551", False),
    (("http://[::1]",), "http://[::1]", True),
    (("http://[::1]",), "http://[::1]/some/path", True),
    (("http://[::1]",), "http://[::1]:80", True),
    (("http://[::1]",), "http://[::2]", False),
    (("http://[::1]",), "http://[::1]:81", False),
    (("http://2001:db8::/32",), "http://[2001:db8::1]", True),
    (("http://2001:db8::/32",), "http://[2001:db9::1]", False),
    (("http://10.0.0.0/8",), "http://10.1.2.3", True),
    (("http://10.0.0.0/8",), "http://example.com", False),
    (("http://127.0.0.1",), "http://0x7f.0.0.1", True),
    (("http://example.com",), "http://ex%61mple.com", True),
    (("http://example.com:8000..8002",), "http://example.com:8001", True),
    (("http://example.com:8000..8002",), "http://example.com:8002", False),  # end exclusive
    (("*://*:*",), "anything://host:1/x", True),
    (("*://*:*",), "not a url at all", False),
    (("http://*:*",), "https://x", False),
    (("*://x:*",), "foo://x", True),
    (("*://x:80",), "foo://x", False),  # no explicit port and no default for 'foo'
    (("http://self",), "http://self", False),  # 'self' only grants relative requests
    (("http://*.spin.internal",), "http://api.spin.internal/x", True),
    (("http://*.spin.internal",), "http://other.spin.internal/x", False),
    (("http://api.spin.internal",), "http://api.spin.internal", True),
    ((), "https://example.com", False),
]


@pytest.mark.parametrize(("entries", "url", "expected"), ALLOWS_TABLE)
def test_allows(entries: tuple[str, ...], url: str, expected: bool) -> None:
    assert allowed(*entries, components=("api", "web")).allows(url) is expected


@pytest.mark.parametrize(
    ("entries", "schemes", "expected"),
    [
        (("http://self",), ("http",), True),
        (("https://self",), ("http",), False),
        (("https://self",), ("http", "https"), True),
        (("http://self.alt",), ("http",), True),
        (("*://*:*",), ("http",), True),
        (("http://example.com",), ("http",), False),
        ((), ("http",), False),
    ],
)
def test_allows_relative(entries: tuple[str, ...], schemes: tuple[str, ...], expected: bool) -> None:
    assert allowed(*entries).allows_relative(schemes) is expected


def test_service_chaining_flag() -> None:
    assert parse_allowed_host("http://*.spin.internal").is_for_service_chaining
    assert parse_allowed_host("http://api.spin.internal").is_for_service_chaining
    assert not parse_allowed_host("http://*.example.com").is_for_service_chaining
    assert not parse_allowed_host("*://*:*").is_for_service_chaining


def test_templates_resolved_and_empty_ones_dropped() -> None:
    values = {"one": "", "two": "", "host": "db.example.com", "port": "1234"}
    hosts = parse_allowed_hosts(
        ["https://{{ one }}", "{{ two }}", "https://three", "http://{{ host }}:{{port}}"],
        resolve=values.__getitem__,
    )
    assert [h.host for h in hosts.entries] == ["three", "db.example.com"]
    assert hosts.allows("http://db.example.com:1234")
    with pytest.raises(LoadError, match="must be resolved first"):
        parse_allowed_hosts(["https://{{ one }}"])
    with pytest.raises(LoadError, match="unmatched"):
        parse_allowed_hosts(["https://{{ one"], resolve=values.__getitem__)


def test_validate_uses_defaults_only_when_all_are_known() -> None:
    validate_allowed_hosts(["http://x.y", "*://my.db:*"], defaults={})
    validate_allowed_hosts(["http://{{ dbhost }}"], defaults={"dbhost": None})  # deferred to run time
    validate_allowed_hosts(["http://{{ dbhost }}:{{ dbport }}"], defaults={"dbhost": "a.com", "dbport": "1"})
    validate_allowed_hosts(["https://{{ one }}", "https://three"], defaults={"one": ""})
    with pytest.raises(LoadError, match="zoinks"):
        validate_allowed_hosts(["http://{{ dbhost }}"], defaults={"dbhost": "zoinks, Scooby!"})
    with pytest.raises(LoadError, match="zootle"):
        validate_allowed_hosts(["http://x.y", "zootle! wurdl!"], defaults={})
    with pytest.raises(LoadError, match="insecure:allow-all"):
        validate_allowed_hosts(["insecure:allow-all"], defaults={})


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("Example.COM", "domain", "example.com"),
        ("caf\u00e9.fr", "domain", "xn--caf-dma.fr"),
        ("1.2.3.4", "ip", "1.2.3.4"),
        ("1.2.3.4.", "ip", "1.2.3.4"),
        ("0x7f.1", "ip", "127.0.0.1"),
        ("017.0.0.1", "ip", "15.0.0.1"),
        ("2130706433", "ip", "127.0.0.1"),
        ("[::FFFF:1.2.3.4]", "ip", "::ffff:102:304"),
        ("1.example", "domain", "1.example"),
    ],
)
def test_parse_host(text: str, kind: str, value: str) -> None:
    k, v = parse_host(text)
    assert (k, str(v)) == (kind, value)


@pytest.mark.parametrize(
    "text", ["", "[::1", "[fe80::1%eth0]", "a b", "a@b", "1.2.3.256", "09.1.1.1", "1..2"]
)
def test_parse_host_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        parse_host(text)


@pytest.mark.parametrize(
    ("legacy", "converted"),
    [
        ([], []),
        (["insecure:allow-all"], ["http://*:*", "https://*:*", "http://self"]),
        (["example.com", "insecure:allow-all"], ["http://*:*", "https://*:*", "http://self"]),
        (["Example.com"], ["http://example.com", "https://example.com"]),
        (["example.com:8080"], ["http://example.com:8080", "https://example.com:8080"]),
        (["https://example.com/"], ["http://example.com", "https://example.com"]),
        (["http://example.com:80"], ["http://example.com", "https://example.com"]),  # default port hidden
        (["self"], ["http://self"]),
        (["a.com", "b.com"], ["http://a.com", "https://a.com", "http://b.com", "https://b.com"]),
        (["example.com/path"], []),  # one bad entry drops the whole list, as Spin does
        (["ftp://example.com"], []),
        (["a.com", "bad host"], []),
    ],
)
def test_convert_allowed_http_hosts(legacy: list[str], converted: list[str]) -> None:
    assert convert_allowed_http_hosts(legacy) == converted
    for entry in converted:
        parse_allowed_host(entry)  # every converted entry is a valid modern entry
