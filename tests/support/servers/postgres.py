"""A real PostgreSQL 15 server (Debian's postgresql package): `initdb` into a temp dir, `postgres` on a free
loopback port as the unprivileged user, password (scram) authentication, optionally TLS.

`psql`-free: set-up statements and connection counts go through psycopg, the client tauon itself uses.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from support.servers import ServerProcess, find_binary, free_port, give_to_unprivileged

PG_BIN = "/usr/lib/postgresql/*/bin"
USER = "spin"
PASSWORD = "s3cret-pg-password"
DATABASE = "spin_dev"


def _tls_files(root: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl), for the sslmode cases."""
    cert, key = root / "server.crt", root / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


class PostgresServer:
    def __init__(self, root: Path, *, tls: bool = False) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.port = free_port()
        self.data = root / "data"
        self.sockets = root / "sock"
        self.tls = tls
        self.cert: Path | None = None
        self._initdb()
        argv = [find_binary("postgres", f"{PG_BIN}/postgres"), "-D", str(self.data), "-p", str(self.port),
                "-h", "127.0.0.1", "-k", str(self.sockets), "-c", "fsync=off",
                "-c", "max_connections=200", "-c", "shared_buffers=16MB"]
        if tls:
            assert self.cert is not None
            argv += ["-c", "ssl=on", "-c", f"ssl_cert_file={self.cert}",
                     "-c", f"ssl_key_file={self.data / 'server.key'}"]
        self.process = ServerProcess("postgres", argv, root / "postgres.log", self._answers,
                                     user=give_to_unprivileged(root))

    def _initdb(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        self.sockets.mkdir(exist_ok=True)
        if self.tls:
            self.cert, key = _tls_files(self.root)
        uid, gid = give_to_unprivileged(self.root)
        initdb = find_binary("initdb", f"{PG_BIN}/initdb")
        kwargs: dict[str, Any] = {}
        if os.getuid() == 0:
            kwargs.update(user=uid, group=gid, extra_groups=[])
        subprocess.run([initdb, "-D", str(self.data), "-U", USER, "--pwfile", str(pwfile),
                        "-A", "scram-sha-256", "-E", "UTF8", "--locale", "C.UTF-8", "--no-sync"],
                       check=True, capture_output=True, **kwargs)
        if self.tls:
            key.rename(self.data / "server.key")
            os.chown(self.data / "server.key", uid, gid)

    @property
    def url(self) -> str:
        """The `postgres://` address a guest (or psycopg) connects with, password included."""
        return f"postgres://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def keyvalue(self, **extra: str) -> str:
        """The same address in libpq's key=value form."""
        fields = {"host": "127.0.0.1", "port": str(self.port), "user": USER, "password": PASSWORD,
                  "dbname": DATABASE, **extra}
        return " ".join(f"{k}={v}" for k, v in fields.items())

    def _answers(self) -> bool:
        try:
            with psycopg.connect(self.keyvalue(dbname="postgres"), connect_timeout=2,
                                 autocommit=True) as conn:
                if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone():
                    conn.execute(f"CREATE DATABASE {DATABASE}")
            return True
        except psycopg.Error:
            return False

    def sql(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement as the superuser (test set-up and checks); rows if it returns any."""
        with psycopg.connect(self.keyvalue(), connect_timeout=5, autocommit=True) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def client_connections(self) -> int:
        """Client backends connected to the test database, this query's own excluded."""
        rows = self.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_type = "
                        "'client backend' AND pid <> pg_backend_pid()", [DATABASE])
        return int(rows[0][0])

    def _family(self) -> list[int]:
        """The postmaster and its children (backends call setsid(), so no process group covers them)."""
        assert self.process.pid is not None
        pids = [self.process.pid]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rpartition(")")[2].split()[1]) == self.process.pid:
                    pids.append(int(entry.name))
        return pids

    def pause(self) -> None:
        """SIGSTOP the postmaster and every backend: connections stay open, nothing answers."""
        for pid in self._family():
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in self._family():
            os.kill(pid, signal.SIGCONT)

    def start(self) -> None:
        self.process.start()

    def stop(self) -> None:
        # SIGINT: PostgreSQL's "fast" shutdown (disconnects clients at once)
        self.process.stop(sig=2)

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        self.stop()
        try:
            yield
        finally:
            self.start()


@contextlib.contextmanager
def run_postgres(root: Path, *, tls: bool = False) -> Iterator[PostgresServer]:
    server = PostgresServer(root, tls=tls)
    server.start()
    try:
        yield server
    finally:
        server.stop()
