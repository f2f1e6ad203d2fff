from __future__ import annotations

import json

import pytest

from tauon.control.spec import TlsSpec, is_app_file_name, parse_address, parse_spec
from tauon.errors import SpecError
from tauon.model.address import Address


def spec_bytes(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_minimal_file() -> None:
    spec = parse_spec("shop.json", spec_bytes(reference="ghcr.io/acme/shop:v3", address="0.0.0.0:8080"))
    assert spec.id == "shop.json"
    assert spec.name == "shop"
    assert spec.address == Address("0.0.0.0", 8080)
    assert spec.state_dir is None
    assert spec.insecure is False
    assert spec.warnings == ()


def test_hash_ignores_formatting_and_key_order() -> None:
    a = parse_spec("a.json", b'{"reference": "r:1", "address": "127.0.0.1:1"}')
    b = parse_spec("a.json", b'{\n  "address":"127.0.0.1:1",\n  "reference":"r:1"\n}\n')
    c = parse_spec("a.json", b'{"reference": "r:2", "address": "127.0.0.1:1"}')
    assert a.content_hash == b.content_hash
    assert a.content_hash != c.content_hash


def test_unknown_fields_warn_but_do_not_change_hash() -> None:
    a = parse_spec("a.json", spec_bytes(reference="r:1", address="127.0.0.1:1"))
    b = parse_spec("a.json", spec_bytes(reference="r:1", address="127.0.0.1:1", colour="blue"))
    assert b.warnings and "'colour'" in b.warnings[0] and "a.json" in b.warnings[0]
    assert a.content_hash == b.content_hash


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [("127.0.0.1:80", "127.0.0.1", 80), ("[::1]:8080", "::1", 8080), ("localhost:3000", "localhost", 3000),
     ("0.0.0.0:65535", "0.0.0.0", 65535), ("my-host.example:1", "my-host.example", 1)],
)
def test_addresses(text: str, host: str, port: int) -> None:
    assert parse_address(text, "f.json") == Address(host, port)


@pytest.mark.parametrize(
    ("value", "why"),
    [("8080", "missing the port"), ("127.0.0.1:0", "port '0'"), ("127.0.0.1:70000", "port '70000'"),
     ("::1:80", "IPv6 addresses need brackets"), ("[zz]:80", "not an IPv6"), ("", "non-empty"),
     (8080, "non-empty string"), ("a b:1", "not a host name"), ("127.0.0.1:x", "port 'x'")],
)
def test_bad_addresses_name_file_field_and_fix(value: object, why: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_address(value, "f.json")
    text = str(info.value)
    assert why in text
    assert text.startswith("f.json: field 'address':")
    assert "host:port" in text


@pytest.mark.parametrize(
    ("data", "field", "needle"),
    [
        (b'{"reference": "r:1", "address": ', None, "not valid JSON"),
        (b"[1, 2]", None, "must contain a JSON object"),
        (b'{"address": "127.0.0.1:1"}', "reference", "is required"),
        (b'{"reference": "", "address": "127.0.0.1:1"}', "reference", "non-empty"),
        (b'{"reference": "r:1", "adress": "127.0.0.1:1"}', "address", "did you mean 'address'"),
        (b'{"reference": "r:1", "address": null}', "address", "non-empty string"),
        (b'{"reference": "r:1", "address": "127.0.0.1:1", "insecure": "yes"}', "insecure", "true or false"),
        (b'{"reference": "r:1", "address": "127.0.0.1:1", "state_dir": "../up"}', "state_dir", "leaves"),
        (b'{"reference": "r:1", "address": "127.0.0.1:1", "variables": {"a": 1}}', "variables.a", "string"),
        (b'{"reference": "r:1", "address": "127.0.0.1:1", "limits": {"memory_mib": 0}}', "limits.memory_mib",
         ">= 1"),
        (b'{"reference": "r:1", "address": "127.0.0.1:1", "limits": {"speed": 1}}', "limits", "unknown"),
        (b"\xff\xfe", None, "UTF-8"),
    ],
)
def test_errors(data: bytes, field: str | None, needle: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec("app.json", data)
    assert info.value.file == "app.json"
    assert info.value.field == field
    assert needle in str(info.value)


def test_address_is_optional() -> None:
    """A Redis-only app needs no address; whether the app has HTTP triggers is known only at load."""
    spec = parse_spec("worker.json", b'{"reference": "r:1"}')
    assert spec.address is None
    assert spec.content_hash != parse_spec("worker.json", b'{"reference": "r:1", "address": "127.0.0.1:1"}'
                                           ).content_hash


def test_limits_are_parsed() -> None:
    spec = parse_spec("a.json", spec_bytes(
        reference="r:1", address="127.0.0.1:1",
        limits={"request_timeout": 1.5, "memory_mib": 16, "max_body_mib": 0, "concurrency": 3}))
    assert spec.limits.request_timeout == 1.5
    assert spec.limits.max_memory == 16 * 1024 * 1024
    assert spec.limits.max_request_body == 0
    assert spec.limits.max_concurrency == 3


@pytest.mark.parametrize(
    ("name", "ok"),
    [("a.json", True), (".a.json", False), ("..data", False), ("a.json.swp", False), (".json", False),
     ("sedAbc123", False), ("a.json~", False), (".a.json.XXXX", False), ("x.JSON", False)],
)
def test_app_file_names(name: str, ok: bool) -> None:
    assert is_app_file_name(name) is ok


def test_typo_of_a_required_field_is_pointed_out() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec("a.json", b'{"refrence": "r:1", "adress": "127.0.0.1:1"}')
    assert "did you mean 'reference'" in str(info.value)
    with pytest.raises(SpecError) as info:
        parse_spec("a.json", b'{"reference": "r:1", "adress": "127.0.0.1:1"}')
    assert "found 'adress': did you mean 'address'" in str(info.value)


def test_a_reference_with_control_characters_is_refused_for_good() -> None:
    """A NUL in the reference used to fail each pull attempt with an unexpected error, forever."""
    with pytest.raises(SpecError, match=r"x\.json: field 'reference': contains control characters"):
        parse_spec("x.json", b'{"reference": "ghcr.io/a/b:v1\\u0000", "address": "127.0.0.1:1"}')


def test_errors_quote_a_huge_value_cut_short() -> None:
    with pytest.raises(SpecError, match="field 'reference': must be a non-empty string") as caught:
        parse_spec("x.json", b'{"reference": ["' + b"7" * 100_000 + b'"], "address": "127.0.0.1:1"}')
    assert len(str(caught.value)) < 500


def test_a_number_too_long_to_convert_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match=r"x\.json: is not valid JSON: .*integer"):
        parse_spec("x.json", b'{"reference": 7' + b"7" * 100_000 + b', "address": "127.0.0.1:1"}')

def test_tls_files() -> None:
    spec = parse_spec("shop.json", json.dumps(
        {"reference": "r/x:1", "address": "0.0.0.0:8443",
         "tls": {"cert": "certs/fullchain.pem", "key": "/etc/tauon/privkey.pem"}}).encode())
    assert spec.tls == TlsSpec(cert="certs/fullchain.pem", key="/etc/tauon/privkey.pem")
    assert not spec.warnings
    plain = parse_spec("shop.json", b'{"reference": "r/x:1", "address": "0.0.0.0:8443"}')
    assert plain.tls is None and plain.content_hash != spec.content_hash  # switching TLS is a change


@pytest.mark.parametrize(("tls", "field", "needle"), [
    ("fullchain.pem", "tls", "must be an object with 'cert' and 'key', got str"),
    ({"cert": "a.pem"}, "tls.key", "is required"),
    ({"key": "a.pem"}, "tls.cert", "is required"),
    ({"cert": "", "key": "k.pem"}, "tls.cert", "must be a path string"),
    ({"cert": "c.pem", "key": 3}, "tls.key", "must be a path string, got 3"),
    ({"cert": "c.pem", "key": "k.pem", "password": "x"}, "tls", "unknown field(s) 'password'"),
])
def test_tls_errors_name_the_field_and_the_fix(tls: object, field: str, needle: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec("shop.json",
                   json.dumps({"reference": "r/x:1", "address": "0.0.0.0:1", "tls": tls}).encode())
    assert info.value.field == field and needle in info.value.message
    text = str(info.value)
    assert text.startswith(f"shop.json: field '{field}': ") and "(" in text  # a hint says what to do
