"""WAGI's CGI conventions (spin-spec §4.5), as pure functions: argv, environment, output parsing.

Mirrors Spin's `crates/http/src/wagi/mod.rs` (build_headers, compose_response) and the argv handling
of `crates/trigger-http/src/wagi.rs`, including quirks a guest may depend on; deviations are noted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from tauon.executors.base import RoutedRequest

GATEWAY_INTERFACE = "CGI/1.1"
SERVER_SOFTWARE = "WAGI/1"
INSUFFICIENT_HEADERS = "Exactly one of 'location' or 'content-type' must be specified"
SKIPPED_HEADERS = frozenset({"HTTP_AUTHORIZATION", "HTTP_CONNECTION"})
"""RFC 3875 §4.1.18: credentials and hop-by-hop headers are not passed to the script."""
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})
"""Guest-written framing headers are replaced: the host knows the real body length."""

_PROTOCOLS = {"1.0": "HTTP/1.0", "1.1": "HTTP/1.1", "2": "HTTP/2.0", "2.0": "HTTP/2.0", "3": "HTTP/3.0"}
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")
_BLANK_LINE = re.compile(rb"\n\r*\n")


class CgiOutputError(ValueError):
    """The guest's stdout is not a response Spin would send (Spin fails the request: 500)."""


@dataclass(frozen=True, slots=True)
class CgiResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    """Lower-case names, one entry per name (duplicates collapsed, last wins)."""
    body: bytes


def build_argv(template: str, path: str, query: str) -> list[str]:
    """`${SCRIPT_NAME}` is the full request path, `${ARGS}` the query with '&' -> ' '; split on ' '."""
    command = template.replace("${SCRIPT_NAME}", path).replace("${ARGS}", query.replace("&", " "))
    return command.split(" ")


def split_host(host: str, default_port: str = "80") -> tuple[str, str]:
    """SERVER_NAME and SERVER_PORT from a Host value.

    Spin splits at the first ':', which mangles IPv6 literals ('[::1]:80' -> '[' and ':1]:80');
    tauon keeps the brackets together instead.
    """
    if host.startswith("["):
        end = host.find("]")
        if end != -1:
            name, rest = host[: end + 1], host[end + 1 :]
            port = rest[1:] if rest.startswith(":") else ""
            return name, port or default_port
    name, _, port = host.partition(":")
    return name, port or default_port


def server_protocol(http_version: str) -> str:
    return _PROTOCOLS.get(http_version, f"HTTP/{http_version}")


def script_name(normalized_route: str) -> str:
    """The matched (normalized) route without its trailing wildcard: '/foo/...' -> '/foo', '/...' -> ''."""
    return normalized_route.removesuffix("/...")


def build_env(
    request: RoutedRequest, content_length: int, component_env: Mapping[str, str]
) -> list[tuple[str, str]]:
    """The guest's environment: the component's `env` first, then the CGI variables.

    Spin hands both lists to WASI in this order, so a name in both appears twice and a libc
    `getenv` sees the component's value first. Within the CGI set, the spin-* values (§3.4) override.
    """
    headers = request.headers
    host_header = next((value for name, value in headers if name == "host"), None)
    server_name, server_port = split_host(host_header or request.authority or "localhost")
    path_info = request.match.path_info
    decoded_path_info = unquote(path_info, errors="replace")
    client_ip = request.client[0]
    query = request.query
    path_and_query = request.path + (f"?{query}" if query else "")
    # Spin looks up a header literally named CONTENT_TYPE (header maps lower-case it to content_type),
    # so ordinary clients get "" here and the real value in HTTP_CONTENT_TYPE.
    content_type = next((value for name, value in headers if name == "content_type"), "")

    cgi: dict[str, str] = {
        "AUTH_TYPE": "",
        "CONTENT_LENGTH": str(content_length),
        "CONTENT_TYPE": content_type,
        "X_FULL_URL": f"{request.scheme}://{server_name}:{server_port}{path_and_query}",
        "GATEWAY_INTERFACE": GATEWAY_INTERFACE,
        "X_MATCHED_ROUTE": request.match.normalized_route,
        "QUERY_STRING": query,
        "REMOTE_ADDR": client_ip,
        "REMOTE_HOST": client_ip,
        "REMOTE_USER": "",
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": script_name(request.match.normalized_route),
        "X_RAW_PATH_INFO": path_info,
        "PATH_INFO": decoded_path_info,
        "PATH_TRANSLATED": decoded_path_info,
        "SERVER_NAME": server_name,
        "SERVER_PORT": server_port,
        "SERVER_PROTOCOL": server_protocol(request.http_version),
        "SERVER_SOFTWARE": SERVER_SOFTWARE,
    }
    for name, value in headers:
        key = "HTTP_" + name.upper().replace("-", "_")
        if key not in SKIPPED_HEADERS:
            cgi[key] = value
    for spin in request.spin_values:
        cgi[spin.wagi] = spin.value
    return [*component_env.items(), *cgi.items()]


def parse_output(stdout: bytes) -> CgiResponse:
    """Spin's compose_response: headers up to the first blank line (CRs ignored), then the body."""
    if not stdout:
        raise CgiOutputError("the guest wrote nothing to stdout (is the trigger's executor really WAGI?)")
    blank = _BLANK_LINE.search(stdout)
    if blank is None:
        return CgiResponse(500, (), INSUFFICIENT_HEADERS.encode())
    try:
        head = stdout[: blank.start() + 1].replace(b"\r", b"").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CgiOutputError(f"response headers are not UTF-8: {exc}") from exc
    body = stdout[blank.end() :]

    fields: dict[str, str] = {}
    for line in head.strip().split("\n"):
        name, colon, value = line.partition(":")
        if colon:  # lines without ':' are skipped, as in Spin
            fields[name.strip().lower()] = value.strip()

    status = 200
    explicit_status = False
    sufficient = False
    out: dict[str, str] = {}
    for name, value in fields.items():
        if name == "status":
            sufficient = explicit_status = True
            code = value.split(" ", 1)[0]
            status = int(code) if _valid_status(code) else 502
        elif name in ("content-type", "location"):
            sufficient = True
            out[name] = _checked_value(name, value)
            if name == "location" and not explicit_status:
                status = 302
        elif _TOKEN.fullmatch(name):
            out[name] = _checked_value(name, value)
        # Invalid header names are dropped (Spin logs and ignores them).
    if not sufficient:
        return CgiResponse(500, (), INSUFFICIENT_HEADERS.encode())
    return CgiResponse(status, tuple(out.items()), body)


def response_headers(response: CgiResponse) -> list[tuple[bytes, bytes]]:
    """ASGI header pairs, with a correct content-length in place of any guest framing headers."""
    pairs = [
        (name.encode("latin-1"), value.encode("utf-8"))
        for name, value in response.headers
        if name not in FRAMING_HEADERS
    ]
    pairs.append((b"content-length", str(len(response.body)).encode()))
    return pairs


def _valid_status(code: str) -> bool:
    # http::StatusCode::from_bytes: exactly three ASCII digits, 100..=999.
    return len(code) == 3 and code.isascii() and code.isdigit() and code[0] != "0"


def _checked_value(name: str, value: str) -> str:
    # http::HeaderValue::from_str: visible ASCII, tab, and bytes >= 0x80. Spin panics on anything else
    # (the request fails), so the request fails here too.
    for char in value:
        code = ord(char)
        if (code < 32 and char != "\t") or code == 127:
            raise CgiOutputError(f"response header {name!r} has a control character in its value")
    return value
