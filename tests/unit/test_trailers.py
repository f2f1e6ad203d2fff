"""server/trailers.py and hostif/http_p3.py's trailer rules, after hyper's HTTP/1.1 encoder: a response
sends only the trailers its `Trailer` header declared, never the fields hyper refuses in trailers, and
only to a client that sent `TE: trailers`."""

from __future__ import annotations

import pytest

from tauon.server.trailers import NOT_ALLOWED, accepts_trailers, declared, encode


@pytest.mark.parametrize(("value", "expected"), [
    (b"trailers", True), (b"Trailers", True), (b"gzip, trailers", True), (b"trailers;q=1", True),
    (b"gzip", False), (b"trailersx", False), (b"", False),
])
def test_te_trailers_is_recognised_as_hyper_does(value: bytes, expected: bool) -> None:
    assert accepts_trailers([(b"host", b"x"), (b"te", value)]) is expected


def test_without_a_te_header_no_trailers_are_accepted() -> None:
    assert not accepts_trailers([(b"trailer", b"x")])
    assert not accepts_trailers([])


def test_declared_names_are_collected_from_every_trailer_header_lower_case() -> None:
    headers = [(b"content-type", b"text/plain"), (b"trailer", b"X-One, x-two"), (b"Trailer", b" x-three ,")]
    assert declared(headers) == {b"x-one", b"x-two", b"x-three"}


def test_only_declared_and_allowed_fields_are_encoded_in_order() -> None:
    fields = [(b"x-one", b"1"), (b"x-other", b"no"), (b"X-Two", b"2"), (b"content-length", b"9")]
    allowed = frozenset({b"x-one", b"x-two", b"content-length"})
    assert encode(allowed, fields) == b"0\r\nx-one: 1\r\nX-Two: 2\r\n\r\n"


def test_nothing_left_to_send_ends_the_body_as_usual() -> None:
    assert encode(frozenset({b"x-one"}), [(b"x-two", b"2")]) is None
    assert encode(frozenset(), [(b"x-one", b"1")]) is None


@pytest.mark.parametrize("name", sorted(NOT_ALLOWED))
def test_fields_hyper_never_sends_as_trailers_are_dropped_even_when_declared(name: bytes) -> None:
    assert encode(frozenset({name}), [(name, b"v")]) is None
