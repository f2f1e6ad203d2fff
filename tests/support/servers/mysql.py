"""A real MariaDB server (Debian's mariadb-server): `mariadb-install-db` into a temp datadir, `mariadbd` on a
free loopback port with its own socket path, as the unprivileged user, and a user with a password."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql

from support.servers import ServerProcess, find_binary, free_port, give_to_unprivileged

USER = "spin"
PASSWORD = "s3cret-my-password"
DATABASE = "spin_dev"


class MysqlServer:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.port = free_port()
        self.data = root / "data"
        self.socket = root / "mysqld.sock"
        self._user = give_to_unprivileged(root)
        self._install()
        argv = [find_binary("mariadbd", "/usr/sbin/mariadbd"), "--no-defaults", f"--datadir={self.data}",
                f"--port={self.port}", "--bind-address=127.0.0.1", f"--socket={self.socket}",
                f"--pid-file={root / 'mysqld.pid'}", "--skip-log-bin", "--innodb-buffer-pool-size=16M",
                "--max-connections=500", "--skip-name-resolve", f"--tmpdir={root}"]
        if os.getuid() == 0:
            argv.append("--user=nobody")
        self.process = ServerProcess("mariadbd", argv, root / "mariadb.log", self._answers, user=self._user)
        self._created = False

    def _install(self) -> None:
        uid, gid = self._user
        kwargs: dict[str, Any] = {}
        if os.getuid() == 0:
            kwargs.update(user=uid, group=gid, extra_groups=[])
        subprocess.run([find_binary("mariadb-install-db"), "--no-defaults", f"--datadir={self.data}",
                        "--auth-root-authentication-method=normal", "--skip-test-db",
                        "--skip-name-resolve"], check=True, capture_output=True, **kwargs)

    @property
    def url(self) -> str:
        return f"mysql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def _root(self) -> pymysql.connections.Connection[Any]:
        return pymysql.connect(unix_socket=str(self.socket), user="root", password="", autocommit=True,
                               connect_timeout=2)

    def _answers(self) -> bool:
        try:
            with self._root() as conn, conn.cursor() as cur:
                if not self._created:
                    cur.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
                    cur.execute(f"CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'")
                    cur.execute(f"GRANT ALL ON {DATABASE}.* TO '{USER}'@'%'")
                    self._created = True
            return True
        except (pymysql.MySQLError, OSError):
            return False

    def sql(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        """One statement as root in the test database (set-up and checks)."""
        with self._root() as conn, conn.cursor() as cur:
            cur.execute(f"USE {DATABASE}")
            cur.execute(statement, params)
            return list(cur.fetchall())

    def client_connections(self) -> int:
        """Connections of the test user (SHOW PROCESSLIST as root)."""
        rows = self.sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s", [USER])
        return int(rows[0][0])

    def start(self) -> None:
        self.process.start(timeout=60)

    def stop(self) -> None:
        self.process.stop()

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        self.stop()
        try:
            yield
        finally:
            self.start()


@contextlib.contextmanager
def run_mysql(root: Path) -> Iterator[MysqlServer]:
    server = MysqlServer(root)
    server.start()
    try:
        yield server
    finally:
        server.stop()
