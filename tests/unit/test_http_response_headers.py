"""The outbound HTTP client's fast header parser (hostif/http_response.py) gives exactly what
http.client's own parser gives, for plain header blocks and for the odd ones it hands back to it."""

from __future__ import annotations

import http.client
import io
import socket
import threading

import pytest

from tauon.hostif.http_response import MAX_HEADERS, FastResponse, parse_headers

BLOCKS = [
    b"content-length: 4\r\ncontent-type: text/plain\r\n\r\n",
    b"Set-Cookie: a=1\r\nset-cookie: b=2\r\nX-Empty:\r\nX-Spaces:   padded  \t\r\n\r\n",
    b"x-lf-only: yes\nother: 1\n\n",
    b"x-latin: caf\xe9\r\n\r\n",
    b"x-colons: a:b:c\r\n\r\n",
    b"\r\n",
    # not plain: folded values, a line without a colon, a name with a space, no blank line at the end
    b"x-folded: first\r\n  second\r\n\r\n",
    b"x-ok: 1\r\nnot a header line\r\nx-after: 2\r\n\r\n",
    b"bad name: 1\r\n\r\n",
    b"x-truncated: 1\r\n",
]


def items(message: http.client.HTTPMessage) -> list[tuple[str, str]]:
    return list(message.items())


@pytest.mark.parametrize("block", BLOCKS)
def test_same_headers_as_http_client(block: bytes) -> None:
    ours = parse_headers(io.BytesIO(block))
    theirs = http.client.parse_headers(io.BytesIO(block))
    assert items(ours) == items(theirs)
    assert type(ours) is type(theirs)
    for name in ("set-cookie", "x-folded", "content-length"):
        assert ours.get_all(name) == theirs.get_all(name)


def test_too_many_or_too_long_headers_are_refused_as_http_client_refuses_them() -> None:
    with pytest.raises(http.client.HTTPException, match="got more than 100 headers"):
        parse_headers(io.BytesIO(b"x: 1\r\n" * (MAX_HEADERS + 1) + b"\r\n"))
    with pytest.raises(http.client.LineTooLong):
        parse_headers(io.BytesIO(b"x: " + b"a" * 70000 + b"\r\n\r\n"))


def test_a_response_reads_through_the_standard_framing() -> None:
    """Status, headers, a chunked body and keep-alive, from a real socket."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            for _ in range(2):
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
                             b"4\r\npong\r\n0\r\n\r\n")

    thread = threading.Thread(target=answer)
    thread.start()
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    client.response_class = FastResponse
    for _ in range(2):  # the second request reuses the connection: framing and keep-alive held
        client.request("GET", "/")
        response = client.getresponse()
        assert isinstance(response, FastResponse)
        assert (response.status, response.getheader("x-a"), response.read()) == (200, "1", b"pong")
        assert not response.will_close
    client.close()
    thread.join()
    server.close()
