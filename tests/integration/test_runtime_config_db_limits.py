"""`[outbound_pg]` / `[outbound_mysql]` `max_connections` on the real client objects against real
servers (postgres, mariadb as unprivileged processes): the app's guests hold at most that many
connections at once, across addresses; one more waits and fails at its deadline with
connection-failed "too many connections", and gets one as soon as another is given back."""

from __future__ import annotations

import time

import pytest

from support.rdbms import server_root
from support.servers.mysql import run_mysql
from support.servers.postgres import run_postgres
from tauon.services.mysql import MysqlClients, MysqlError
from tauon.services.postgres import PgClients, PgError

pytestmark = pytest.mark.integration


def test_postgres_max_connections_across_addresses() -> None:
    with server_root("pg-limit") as root, run_postgres(root / "pg") as pg:
        clients = PgClients(max_connections=2)
        try:
            first = clients.acquire(pg.url, time.monotonic() + 20)
            second = clients.acquire(pg.url + "?application_name=other", time.monotonic() + 20)
            start = time.monotonic()
            with pytest.raises(PgError, match="too many connections"):
                clients.acquire(pg.url, time.monotonic() + 1.0)
            assert 0.8 < time.monotonic() - start < 5
            first.release()
            third = clients.acquire(pg.url + "?application_name=other", time.monotonic() + 20)
            second.release()
            third.release()
        finally:
            clients.close()


def test_mysql_max_connections() -> None:
    with server_root("my-limit") as root, run_mysql(root / "my") as my:
        clients = MysqlClients(max_connections=1)
        try:
            first = clients.connect(my.url, time.monotonic() + 20)
            with pytest.raises(MysqlError, match="too many connections"):
                clients.connect(my.url, time.monotonic() + 1.0)
            first.close()
            clients.connect(my.url, time.monotonic() + 20).close()
        finally:
            clients.close()
