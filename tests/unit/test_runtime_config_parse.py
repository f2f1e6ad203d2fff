"""runtime-config.toml parsing (runtimeconfig/parse.py, attach.py): Spin's tables and keys, paths
resolved against the file's directory, refusals naming the table and key, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from tauon.control.runtimeconfig import attach_runtime_configs
from tauon.control.spec import parse_spec
from tauon.errors import SpecError
from tauon.runtimeconfig.errors import RuntimeConfigError
from tauon.runtimeconfig.model import (
    EnvProviderConfig,
    KeyValueStoreConfig,
    SqliteDatabaseConfig,
    StaticProviderConfig,
    VaultProviderConfig,
    redacted_url,
)
from tauon.runtimeconfig.parse import parse_runtime_config

DIR = Path("/etc/tauon")


def parse(text: str):  # type: ignore[no-untyped-def]
    return parse_runtime_config(DIR / "rc.toml", text.encode())


def test_every_supported_table() -> None:
    rc = parse('''
state_dir = "state"
[key_value_store.default]
type = "redis"
url = "redis://:hunter2@redis.internal:6380/1"
[key_value_store.cache]
type = "spin"
path = "data/cache.db"
[key_value_store.scratch]
type = "spin"
[sqlite_database.reports]
type = "spin"
path = "/var/lib/reports.db"
[[variables_provider]]
type = "env"
prefix = "SHOP"
dotenv_path = ".env"
[[variables_provider]]
type = "static"
values = { colour = "blue" }
[[variables_provider]]
type = "vault"
url = "http://127.0.0.1:8200"
token = "root-token-xyz"
mount = "secret"
prefix = "shop"
[llm_compute]
type = "spin"
''')
    assert rc.state_dir == "/etc/tauon/state"
    assert rc.key_value_stores == (
        KeyValueStoreConfig("default", "redis", url="redis://:hunter2@redis.internal:6380/1"),
        KeyValueStoreConfig("cache", "spin", path="/etc/tauon/data/cache.db"),
        KeyValueStoreConfig("scratch", "spin", path=None),
    )
    assert rc.sqlite_databases == (SqliteDatabaseConfig("reports", "/var/lib/reports.db"),)
    assert rc.variables_providers == (
        EnvProviderConfig(prefix="SHOP", dotenv_path="/etc/tauon/.env"),
        StaticProviderConfig(values={"colour": "blue"}),
        VaultProviderConfig(url="http://127.0.0.1:8200", token="root-token-xyz", mount="secret",
                            prefix="shop"),
    )
    shown = repr(rc) + rc.summary()
    assert "hunter2" not in shown and "root-token-xyz" not in shown and "blue" not in shown
    assert rc.summary().startswith("[key_value_store.default: redis], [key_value_store.cache: spin]")


def test_legacy_config_provider_and_empty_state_dir() -> None:
    rc = parse('state_dir = ""\n[[config_provider]]\ntype = "static"\nvalues = { a = "b" }\n')
    assert rc.state_dir is None  # Spin: an empty string means unset
    assert rc.variables_providers == (StaticProviderConfig(values={"a": "b"}),)


@pytest.mark.parametrize(("text", "where", "words"), [
    ('[key_value_store.cache]\ntype = "azure_cosmos"\n', "key_value_store.cache.type",
     "type 'azure_cosmos' (Azure Cosmos DB) is not available in tauon"),
    ('[key_value_store.cache]\ntype = "aws_dynamo"\n', "key_value_store.cache.type",
     "not available in tauon"),
    ('[key_value_store.cache]\ntype = "mongo"\n', "key_value_store.cache.type", "unknown type 'mongo'"),
    ('[key_value_store.cache]\npath = "x"\n', "key_value_store.cache.type", "is required"),
    ('[key_value_store.cache]\ntype = "spin"\npaht = "x"\n', "key_value_store.cache",
     "unknown key(s) 'paht'"),
    ('[key_value_store.cache]\ntype = "redis"\n', "key_value_store.cache.url", "is required"),
    ('[key_value_store.cache]\ntype = "redis"\nurl = "http://x"\n', "key_value_store.cache.url",
     "not a usable Redis URL"),
    ('[sqlite_database.db]\ntype = "libsql"\nurl = "x"\ntoken = "t"\n', "sqlite_database.db.type",
     "not available in tauon"),
    ('[[variables_provider]]\ntype = "azure_key_vault"\n', "variables_provider[0].type", "not available"),
    ('[[variables_provider]]\ntype = "vault"\nurl = "http://v"\nmount = "m"\n', "variables_provider[0].token",
     "is required"),
    ('[outbound_networking]\nblock_networks = ["10.0.0.0/33"]\n', "outbound_networking.block_networks[0]",
     "neither an IP network in CIDR notation nor 'private'"),
    ('[outbound_networking]\nblock_networks = "private"\n', "outbound_networking.block_networks",
     "must be a list"),
    ('[outbound_networking]\nmax_total_connections = 5\n', "outbound_networking.max_total_connections",
     "not supported"),
    ('[outbound_networking]\nblock = ["private"]\n', "outbound_networking", "unknown key 'block'"),
    ('[llm_compute]\ntype = "remote_http"\nurl = "ftp://x"\nauth_token = "t"\n', "llm_compute.url",
     "must be an http:// or https:// URL"),
    ('[llm_compute]\ntype = "remote_http"\nurl = "http://x"\n', "llm_compute.auth_token", "is required"),
    ('[llm_compute]\ntype = "remote_http"\nurl = "http://x"\nauth_token = "t"\napi_type = "openai"\n',
     "llm_compute.api_type", "unknown api_type 'openai'"),
    ('[llm_compute]\ntype = "local"\n', "llm_compute.type", "unknown type 'local'"),
    ('[[client_tls]]\ncomponent_ids = []\nhosts = ["a.example"]\n', "client_tls[0].component_ids",
     "non-empty list"),
    ('[[client_tls]]\ncomponent_ids = ["web"]\nhosts = ["a.example:443"]\n', "client_tls[0].hosts",
     "ports are not supported"),
    ('[[client_tls]]\ncomponent_ids = ["web"]\nhosts = ["a"]\nclient_key_file = "k.pem"\n', "client_tls[0]",
     "unknown key(s) 'client_key_file'"),
    ('[[client_tls]]\ncomponent_ids = ["web"]\nhosts = ["a"]\nclient_cert_file = "c.pem"\n',
     "client_tls[0].client_private_key_file", "is required with client_cert_file"),
    ('[[client_tls]]\ncomponent_ids = ["web"]\nhosts = ["a"]\nca_roots_file = "/nonexistent.pem"\n',
     "client_tls[0].ca_roots_file", "failed to load certificate(s) from '/nonexistent.pem'"),
    ('[[client_tls]]\ncomponent_ids = ["web"]\nhosts = ["a"]\nca_use_platform_roots = false\n',
     "client_tls[0]", "trusts no roots"),
    ('colour = "blue"\n', "colour", "is not a runtime config key"),
    ("[outbound_redis]\nmax_connections = 0\n", "outbound_redis.max_connections", "whole number >= 1"),
    ("[outbound_mqtt]\nmax_conns = 3\n", "outbound_mqtt", "unknown key(s) 'max_conns'"),
    ("[outbound_pg]\nmax_conns = 3\n", "outbound_pg", "unknown key(s) 'max_conns'"),
    ("[outbound_http]\nmax_connections = 3\nmax_concurrent_requests = 2\n", "outbound_http.max_connections",
     "both set"),
    ("[outbound_http]\nmax_connections = 0\n", "outbound_http.max_connections", "whole number >= 1"),
    ("[outbound_http]\npooling = true\n", "outbound_http", "unknown key(s) 'pooling'"),
    ("key_value_store = 3\n", "key_value_store", "must be tables"),
])
def test_refusals_name_the_table_and_key(text: str, where: str, words: str) -> None:
    with pytest.raises(RuntimeConfigError) as info:
        parse(text)
    assert info.value.where == where
    assert words in info.value.message


def test_bad_toml_is_an_error() -> None:
    with pytest.raises(RuntimeConfigError, match="is not valid TOML"):
        parse("[key_value_store.cache\n")


def test_attach_folds_the_file_into_the_content_hash(tmp_path: Path) -> None:
    spec = parse_spec("shop.json", b'{"reference": "r/a:1", "address": "127.0.0.1:3000", '
                                   b'"runtime_config": "conf/rc.toml"}')
    plain = parse_spec("plain.json", b'{"reference": "r/a:1", "address": "127.0.0.1:3001"}')
    (tmp_path / "conf").mkdir()
    rc = tmp_path / "conf" / "rc.toml"
    rc.write_text('[key_value_store.cache]\ntype = "spin"\npath = "c.db"\n')
    first = attach_runtime_configs({"shop.json": spec, "plain.json": plain}, tmp_path, None)
    one = first["shop.json"]
    assert not isinstance(one, SpecError) and one.runtime is not None
    assert one.runtime.key_value_stores[0].path == str(tmp_path / "conf" / "c.db")
    assert first["plain.json"] is plain  # no file named, no daemon default: untouched
    rc.write_text('[key_value_store.cache]\ntype = "spin"\npath = "d.db"\n')
    two = attach_runtime_configs({"shop.json": spec}, tmp_path, None)["shop.json"]
    assert not isinstance(two, SpecError) and two.content_hash != one.content_hash  # an edit is a change
    rc.write_text('[key_value_store.cache]\ntype = "dynamo"\n')
    bad = attach_runtime_configs({"shop.json": spec}, tmp_path, None)["shop.json"]
    assert isinstance(bad, SpecError)
    assert str(bad) == (f"shop.json: field 'runtime_config': runtime config {rc}: "
                        "[key_value_store.cache.type] unknown type 'dynamo' "
                        "(tauon supports 'spin' and 'redis')")


def test_daemon_default_applies_to_files_naming_none(tmp_path: Path) -> None:
    default = tmp_path / "daemon.toml"
    default.write_text('[[variables_provider]]\ntype = "static"\nvalues = { a = "b" }\n')
    plain = parse_spec("plain.json", b'{"reference": "r/a:1", "address": "127.0.0.1:3001"}')
    got = attach_runtime_configs({"plain.json": plain}, tmp_path, default)["plain.json"]
    assert not isinstance(got, SpecError) and got.runtime is not None
    assert got.runtime.file == str(default)
    missing = attach_runtime_configs({"plain.json": plain}, tmp_path, tmp_path / "nope.toml")["plain.json"]
    assert isinstance(missing, SpecError) and "does not exist" in str(missing)
    assert "tauon's --runtime-config" in str(missing)


def test_runtime_config_field_must_be_a_path() -> None:
    with pytest.raises(SpecError, match="runtime_config"):
        parse_spec("a.json", b'{"reference": "r/a:1", "address": "127.0.0.1:1", "runtime_config": 3}')


def test_redacted_url_drops_credentials() -> None:
    assert redacted_url("redis://user:hunter2@[::1]:6380/2?x=y") == "redis://[::1]:6380"


def test_outbound_max_connections() -> None:
    rc = parse("[outbound_redis]\nmax_connections = 4\n[outbound_mqtt]\n[outbound_pg]\nmax_connections = 2\n"
               "[outbound_mysql]\nmax_connections = 3\n")
    # an empty table: unbounded in Spin, tauon's default here
    assert rc.max_connections == {"redis": 4, "pg": 2, "mysql": 3}
    assert "[outbound_redis: max_connections=4]" in rc.summary()


def test_remote_llm_token_never_shown() -> None:
    rc = parse('[llm_compute]\ntype = "remote_http"\nurl = "https://u:pw@llm.example/x"\n'
               'auth_token = "tok-s3cret"\napi_type = "open_ai"\n')
    assert rc.llm is not None and (rc.llm.api_type, rc.llm.auth_token) == ("open_ai", "tok-s3cret")
    shown = repr(rc) + rc.summary()
    assert "tok-s3cret" not in shown and ":pw@" not in shown
    assert "[llm_compute: remote_http https://llm.example api_type=open_ai]" in rc.summary()
    assert parse('[llm_compute]\ntype = "spin"\n').llm is None


def test_outbound_http_as_spin_reads_it() -> None:
    assert (parse("").http_pooling, parse("").max_connections) == (True, {})
    rc = parse("[outbound_http]\nmax_connections = 5\n")  # Spin's serde default: pooling off
    assert (rc.http_pooling, rc.max_connections) == (False, {"http": 5})
    assert "[outbound_http: connection_pooling=false]" in rc.summary()
    rc = parse("[outbound_http]\nconnection_pooling = true\nmax_concurrent_requests = 0\n")
    assert (rc.http_pooling, rc.max_connections) == (True, {"http": 1})  # deprecated: n allows n + 1
