"""Outbound PostgreSQL / MySQL before any connection: allowed_outbound_hosts with Spin's host extraction
and error text, address parsing (URL and key=value), untrusted connection options, placeholders.
No server is needed: every case here fails (or is checked) before a socket is opened."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from support.spin_services import LOGGER, app_services, component, host_state
from tauon.app.allowed_hosts import parse_allowed_hosts
from tauon.hostif import spin_mysql, spin_pg
from tauon.hostif.registry import HostInterface
from tauon.hostif.state import HostState
from tauon.services.mysql import parse_address as mysql_address
from tauon.services.mysql_placeholders import PlaceholderError, bind
from tauon.services.postgres import PgError, parse_address

BY_NAME: dict[str, HostInterface] = {i.name: i for i in spin_pg.INTERFACES + spin_mysql.INTERFACES}
PG_VERSIONS = ["fermyon:spin/postgres@2.0.0", "spin:postgres/postgres@3.0.0", "spin:postgres/postgres@4.0.0",
               "spin:postgres/postgres@4.1.0"]


@pytest.fixture
def state() -> Iterator[HostState]:
    with app_services(None, component()) as services:
        yield host_state(services, allowed=["postgres://db.internal", "mysql://127.0.0.1:3306"])


def call(interface: str, func: str, state: HostState, *args: object) -> Any:
    return BY_NAME[interface].funcs[func](state, *args)


@pytest.mark.parametrize("interface", PG_VERSIONS)
def test_postgres_denied_names_the_address_spin_checked(state: HostState, interface: str) -> None:
    open_ = "[static]connection.open"
    assert call(interface, open_, state, "postgres://user:pw@evil.example:6543/db") == (
        "err", ("connection-failed", "address postgres://evil.example:6543 is not permitted"))
    assert call(interface, open_, state, "host=evil.example user=me") == (
        "err", ("connection-failed", "address postgres://evil.example is not permitted"))
    # every host of a multi-host string is checked, each with its own port
    assert call(interface, open_, state, "postgres://u@db.internal:5432,evil.example:7/app") == (
        "err", ("connection-failed", "address postgres://evil.example:7 is not permitted"))
    assert state.table.__len__() == 0


def test_v1_postgres_and_mysql_fail_per_call_with_their_error_names(state: HostState) -> None:
    assert call("fermyon:spin/postgres", "query", state, "postgres://u@evil.example/x", "SELECT 1", []) == (
        "err", ("connection-failed", "address postgres://evil.example is not permitted"))
    assert call("fermyon:spin/postgres", "execute", state, "postgres://u@db.internal/x", "SELECT 1",
                [("uint8", 1)]) == (
        "err", ("value-conversion-failed", "Postgres does not support unsigned integers"))
    assert call("fermyon:spin/mysql@2.0.0", "[static]connection.open", state, "mysql://10.0.0.1/db") == (
        "err", ("connection-failed", "address mysql://10.0.0.1/db is not permitted"))
    assert call("fermyon:spin/mysql", "query", state, "mysql://u:p@10.0.0.1/db", "SELECT 1", []) == (
        "err", ("connection-failed", "address mysql://u:p@10.0.0.1/db is not permitted"))


def test_no_allowed_hosts_denies_everything(state: HostState) -> None:
    bare = host_state(state.config.services)
    open_ = "[static]connection.open"
    assert call("spin:postgres/postgres@3.0.0", open_, bare, "postgres://u@db.internal/x") == (
        "err", ("connection-failed", "address postgres://db.internal is not permitted"))


@pytest.mark.parametrize(("address", "error"), [
    ("host=/var/run/postgresql user=me", "Unix sockets are not supported on WebAssembly"),
    ("postgres://db.internal/app", "invalid connection string: user missing"),
    ("user=me", "invalid connection string: host missing"),
    ("postgres://me@db.internal/app?sslmode=verify-full", "invalid connection string: invalid value for "
                                                          "option `sslmode`: verify-full"),
    ("host=db.internal user=me sslkey=/etc/shadow", "invalid connection string: unknown option `sslkey`"),
    ("host=db.internal user=me passfile=/root/.pgpass",
     "invalid connection string: unknown option `passfile`"),
    ("host=db.internal hostaddr=10.0.0.1 user=me", "invalid connection string: unknown option `hostaddr`"),
])
def test_untrusted_connection_strings_are_refused(address: str, error: str) -> None:
    with pytest.raises(PgError) as info:
        parse_address(address)
    assert info.value.variant() == ("connection-failed", error)


def test_connection_options_never_come_from_tauons_environment() -> None:
    options = parse_address("postgres://me@db.internal/app")
    assert options["password"] == ""  # not $PGPASSWORD
    assert options["port"] == "5432" and options["dbname"] == "app"
    assert options["sslmode"] == "verify-full" and options["sslrootcert"] == "system"  # Spin's default prefer
    assert parse_address("host=db.internal user=me sslmode=disable")["dbname"] == "me"
    assert "sslrootcert" not in parse_address("host=db.internal user=me sslmode=disable")


def test_mysql_addresses() -> None:
    options = mysql_address("mysql://us%40r:p%3Ass@db.internal/app")
    assert (options["host"], options["port"], options["user"], options["password"], options["database"]) == (
        "db.internal", 3306, "us@r", "p:ss", "app")
    assert options["ssl"] is None and options["ssl_disabled"]
    assert mysql_address("mysql://u@h/db?ssl-mode=REQUIRED")["ssl"] is not None
    assert mysql_address("mysql://u@h/db?sslMode=DISABLED")["ssl"] is None


def test_mysql_placeholders_skip_strings_identifiers_and_comments() -> None:
    def esc(v: object) -> str:
        return f"<{v}>"

    sql = "SELECT '?', \"a\\\"?\", `c?`, ? -- ?\n, ? /* ? */ # ?\n FROM t WHERE x = 'it''s ?' AND y = ?"
    assert bind(sql, [1, 2, 3], esc) == ("SELECT '?', \"a\\\"?\", `c?`, <1> -- ?\n, <2> /* ? */ # ?\n FROM t "
                                         "WHERE x = 'it''s ?' AND y = <3>")
    with pytest.raises(PlaceholderError, match="takes 1 parameters but 2"):
        bind("SELECT ?", [1, 2], esc)
    with pytest.raises(PlaceholderError):
        bind("SELECT ?, ?", [1], esc)


def test_credentials_in_addresses_are_not_logged(state: HostState, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        call("spin:postgres/postgres@3.0.0", "[static]connection.open", state,
             "postgres://admin:hunter2@evil.example/app")
        call("fermyon:spin/mysql", "query", state, "mysql://root:hunter2@10.0.0.9:3306/db", "SELECT 1", [])
    assert "hunter2" not in caplog.text


def test_variable_templates_in_allowed_hosts(state: HostState) -> None:
    """`{{ variable }}` entries are rendered with the app's variables, then checked as any other."""
    variables = {"db_host": "db.example", "db_port": "6432"}
    allowed = parse_allowed_hosts(["postgres://{{ db_host }}:{{ db_port }}", "mysql://{{ db_host }}"],
                                  resolve=variables.__getitem__)
    config = dataclasses.replace(state.config, allowed_hosts=allowed)
    templated = HostState(config, timeout=10.0)
    open_ = "[static]connection.open"
    assert call("spin:postgres/postgres@4.0.0", open_, templated, "postgres://u@db.example:5432/x") == (
        "err", ("connection-failed", "address postgres://db.example:5432 is not permitted"))
    assert call("spin:postgres/postgres@4.0.0", open_, templated, "postgres://u@127.0.0.1:6432/x") == (
        "err", ("connection-failed", "address postgres://127.0.0.1:6432 is not permitted"))
    assert call("fermyon:spin/mysql@2.0.0", open_, templated, "mysql://u@other.example/x") == (
        "err", ("connection-failed", "address mysql://u@other.example/x is not permitted"))
    spin_pg.check_allowed("postgres://u@db.example:6432/x", allowed.allows)  # raises if denied
    assert allowed.allows("mysql://u:p@db.example/x", "mysql")
