"""Real service processes for tests (Redis, PostgreSQL, MariaDB, Mosquitto, ...), one module each.

Every server runs from its Debian package's binary on a free loopback port, with its data in a temp dir,
and is stopped by PID. Servers that refuse to run as root (PostgreSQL) run as an unprivileged user.
`.ci/run` (through scripts/setup-dev) installs the packages.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from support.ports import free_port as free_port

SETUP_HINT = "install it with the set-up command in README.md (scripts/setup-dev)"
UNPRIVILEGED_USER = "nobody"



def find_binary(name: str, *candidates: str) -> str:
    """`name` on PATH, else the first existing absolute candidate (e.g. /usr/lib/postgresql/15/bin/...)."""
    found = shutil.which(name)
    if found:
        return found
    for candidate in candidates:
        for path in sorted(Path("/").glob(candidate.lstrip("/")), reverse=True):
            if os.access(path, os.X_OK):
                return str(path)
    raise RuntimeError(f"'{name}' is not installed: {SETUP_HINT}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def give_to_unprivileged(path: Path) -> tuple[int, int]:
    """chown -R `path` to the unprivileged user (when running as root); return its (uid, gid)."""
    if os.getuid() != 0:
        return os.getuid(), os.getgid()
    entry = pwd.getpwnam(UNPRIVILEGED_USER)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)
    # every parent must be traversable by that user
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            os.chmod(parent, mode | 0o001)
    return entry.pw_uid, entry.pw_gid


class ServerProcess:
    """One server process: started with `argv`, ready when `ready()` is true, stopped by PID."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, ready: Callable[[], bool], *,
                 user: tuple[int, int] | None = None, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.ready = ready
        self.user = user
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        if self.running:
            return
        log = self.log_path.open("ab")
        kwargs: dict[str, object] = {}
        if self.user is not None and os.getuid() == 0:
            kwargs.update(user=self.user[0], group=self.user[1], extra_groups=[])
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                     env=self.env, start_new_session=True, **kwargs)  # type: ignore[call-overload]
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready within {timeout}s: {self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets but answers nothing (a hung server)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"
