"""WAGI's CGI conventions (spin-spec §4.5): argv, environment and stdout parsing."""

from __future__ import annotations

import pytest

from tauon.app.routes import RouteMatch
from tauon.executors.base import RoutedRequest
from tauon.executors.cgi import (
    INSUFFICIENT_HEADERS,
    CgiOutputError,
    build_argv,
    build_env,
    parse_output,
    response_headers,
    script_name,
    split_host,
)
from tauon.model.spinvalue import SpinValue


def make_request(
    *,
    path: str = "/base/hello%20world/x",
    query: str = "a=1&b=2",
    headers: tuple[tuple[str, str], ...] = (),
    route: str = "/base/...",
    normalized: str = "/base/...",
    path_info: str = "/hello%20world/x",
    spin_values: tuple[SpinValue, ...] = (),
    http_version: str = "1.1",
) -> RoutedRequest:
    match: RouteMatch[object] = RouteMatch(
        target=None,
        raw_route=route,
        normalized_route=normalized,
        component_route=route.removesuffix("/..."),
        path_info=path_info,
    )
    return RoutedRequest(
        method="POST",
        path=path,
        query=query,
        headers=headers,
        spin_values=spin_values,
        scheme="http",
        authority="example.com:8080",
        client=("10.1.2.3", 41234),
        http_version=http_version,
        match=match,
    )


# -- argv ---------------------------------------------------------------------------------------


def test_argv_default_template_uses_full_path_and_query_words() -> None:
    assert build_argv("${SCRIPT_NAME} ${ARGS}", "/base/x", "a=1&b=2") == ["/base/x", "a=1", "b=2"]


def test_argv_empty_query_yields_trailing_empty_argument() -> None:
    assert build_argv("${SCRIPT_NAME} ${ARGS}", "/x", "") == ["/x", ""]


def test_argv_splits_on_single_spaces_only() -> None:
    assert build_argv("prog  --flag ${ARGS}", "/x", "q") == ["prog", "", "--flag", "q"]


def test_argv_query_is_not_decoded() -> None:
    assert build_argv("${ARGS}", "/x", "a=%20b&c+d") == ["a=%20b", "c+d"]


# -- environment ----------------------------------------------------------------------------------


def env_of(
    request: RoutedRequest, length: int = 5, component_env: dict[str, str] | None = None
) -> dict[str, str]:
    return dict(build_env(request, length, component_env or {}))


def test_env_has_every_cgi_variable_of_the_spec_table() -> None:
    env = env_of(make_request(headers=(("host", "example.com:8080"), ("content-type", "text/plain"))))
    assert env["AUTH_TYPE"] == ""
    assert env["CONTENT_LENGTH"] == "5"
    assert env["CONTENT_TYPE"] == ""  # Spin reads a header literally named CONTENT_TYPE
    assert env["HTTP_CONTENT_TYPE"] == "text/plain"
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1"
    assert env["QUERY_STRING"] == "a=1&b=2"
    assert env["REMOTE_ADDR"] == env["REMOTE_HOST"] == "10.1.2.3"
    assert env["REMOTE_USER"] == ""
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == "/base"
    assert env["X_RAW_PATH_INFO"] == "/hello%20world/x"
    assert env["PATH_INFO"] == "/hello world/x"  # decoded unless the spin value overrides (below)
    assert env["PATH_TRANSLATED"] == "/hello world/x"
    assert env["SERVER_NAME"] == "example.com"
    assert env["SERVER_PORT"] == "8080"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_SOFTWARE"] == "WAGI/1"
    assert env["X_FULL_URL"] == "http://example.com:8080/base/hello%20world/x?a=1&b=2"
    assert env["X_MATCHED_ROUTE"] == "/base/..."


def test_env_spin_values_override_and_path_info_ends_up_raw() -> None:
    values = (
        SpinValue("spin-path-info", "PATH_INFO", "/hello%20world/x"),
        SpinValue("spin-full-url", "X_FULL_URL", "http://example.com:8080/base/hello%20world/x?a=1&b=2"),
        SpinValue("spin-matched-route", "X_MATCHED_ROUTE", "/base/..."),
        SpinValue("spin-path-match-user-id", "X_PATH_MATCH_USER_ID", "42"),
    )
    env = env_of(make_request(spin_values=values))
    assert env["PATH_INFO"] == "/hello%20world/x"
    assert env["PATH_TRANSLATED"] == "/hello world/x"
    assert env["X_PATH_MATCH_USER_ID"] == "42"


def test_env_http_headers_skip_authorization_and_connection_and_last_duplicate_wins() -> None:
    headers = (
        ("authorization", "Bearer secret"),
        ("connection", "keep-alive"),
        ("x-custom-thing", "one"),
        ("x-custom-thing", "two"),
        ("host", "example.com"),
    )
    env = env_of(make_request(headers=headers))
    assert "HTTP_AUTHORIZATION" not in env
    assert "HTTP_CONNECTION" not in env
    assert env["HTTP_X_CUSTOM_THING"] == "two"
    assert env["HTTP_HOST"] == "example.com"
    assert env["SERVER_PORT"] == "80"  # no port in Host


def test_env_component_env_comes_first_and_duplicates_are_kept() -> None:
    pairs = build_env(make_request(), 0, {"GREETING": "hi", "REQUEST_METHOD": "spoofed"})
    assert pairs[0] == ("GREETING", "hi")
    assert pairs[1] == ("REQUEST_METHOD", "spoofed")
    assert ("REQUEST_METHOD", "POST") in pairs[2:]


def test_env_without_host_header_uses_authority() -> None:
    env = env_of(make_request(headers=()))
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.com", "8080")


@pytest.mark.parametrize(
    ("version", "protocol"), [("1.0", "HTTP/1.0"), ("1.1", "HTTP/1.1"), ("2", "HTTP/2.0")]
)
def test_env_server_protocol(version: str, protocol: str) -> None:
    assert env_of(make_request(http_version=version))["SERVER_PROTOCOL"] == protocol


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("example.com", ("example.com", "80")),
        ("example.com:3000", ("example.com", "3000")),
        ("[::1]:8080", ("[::1]", "8080")),
        ("[::1]", ("[::1]", "80")),
        ("example.com:", ("example.com", "80")),
    ],
)
def test_split_host(host: str, expected: tuple[str, str]) -> None:
    assert split_host(host) == expected


@pytest.mark.parametrize(
    ("normalized", "expected"), [("/foo/...", "/foo"), ("/...", ""), ("/foo", "/foo"), ("", "")]
)
def test_script_name_drops_the_wildcard(normalized: str, expected: str) -> None:
    assert script_name(normalized) == expected


# -- output ---------------------------------------------------------------------------------------


def test_output_content_type_and_body() -> None:
    response = parse_output(b"Content-Type: text/plain\n\nhello\n")
    assert (response.status, response.headers, response.body) == (
        200,
        (("content-type", "text/plain"),),
        b"hello\n",
    )


def test_output_crs_ignored_in_headers_but_kept_in_body() -> None:
    response = parse_output(b"Content-Type: a/b\r\nX-A:  spaced  \r\n\r\nline\r\n")
    assert dict(response.headers) == {"content-type": "a/b", "x-a": "spaced"}
    assert response.body == b"line\r\n"


def test_output_location_implies_302_unless_status_given() -> None:
    assert parse_output(b"Location: /elsewhere\n\n").status == 302
    both = parse_output(b"Location: /x\nStatus: 201 Created\n\nmade")
    assert both.status == 201
    assert dict(both.headers) == {"location": "/x"}
    status_first = parse_output(b"Status: 404\nLocation: /x\n\n")
    assert status_first.status == 404


def test_output_status_alone_is_sufficient() -> None:
    response = parse_output(b"Status: 204\n\n")
    assert (response.status, response.headers, response.body) == (204, (), b"")


@pytest.mark.parametrize("status", [b"abc", b"20", b"2000", b"099", b"", b"200\tOK"])
def test_output_unparsable_status_is_502(status: bytes) -> None:
    response = parse_output(b"Status: " + status + b"\nContent-Type: text/plain\n\nbody")
    assert response.status == 502
    assert response.body == b"body"


def test_output_without_required_headers_is_500_with_spins_message() -> None:
    response = parse_output(b"X-Only: thing\n\nbody")
    assert (response.status, response.headers, response.body) == (500, (), INSUFFICIENT_HEADERS.encode())


def test_output_without_blank_line_is_500() -> None:
    response = parse_output(b"Content-Type: text/plain\nno blank line follows")
    assert response.status == 500
    assert response.body == INSUFFICIENT_HEADERS.encode()


def test_output_duplicates_collapse_last_wins_case_insensitively() -> None:
    response = parse_output(b"Content-Type: a/b\nX-Dup: 1\nx-dup: 2\nX-DUP: 3\n\n")
    assert dict(response.headers) == {"content-type": "a/b", "x-dup": "3"}


def test_output_lines_without_colon_and_invalid_names_are_skipped() -> None:
    response = parse_output(b"Content-Type: a/b\nnot a header\nBad Name: v\nGood-Name: v:with:colons\n\nx")
    assert dict(response.headers) == {"content-type": "a/b", "good-name": "v:with:colons"}


def test_output_blank_line_found_across_crs_only() -> None:
    response = parse_output(b"Content-Type: a/b\n\r\r\nbody\n\nmore")
    assert response.body == b"body\n\nmore"


def test_output_empty_stdout_is_an_error() -> None:
    with pytest.raises(CgiOutputError, match="nothing to stdout"):
        parse_output(b"")


def test_output_non_utf8_headers_is_an_error() -> None:
    with pytest.raises(CgiOutputError, match="not UTF-8"):
        parse_output(b"Content-Type: \xff\n\nbody")


def test_output_control_characters_in_values_are_an_error() -> None:
    with pytest.raises(CgiOutputError, match="control character"):
        parse_output(b"Content-Type: a\x01b\n\nbody")


def test_body_bytes_are_untouched() -> None:
    body = bytes(range(256))
    assert parse_output(b"Content-Type: application/octet-stream\n\n" + body).body == body


def test_response_headers_replace_guest_framing_headers() -> None:
    response = parse_output(b"Content-Type: a/b\nContent-Length: 999\nTransfer-Encoding: chunked\n\nfive!")
    assert response_headers(response) == [(b"content-type", b"a/b"), (b"content-length", b"5")]
