"""Docker credential helpers: `docker-credential-<name> get`, server on stdin, JSON on stdout.

Running the helper (`SubprocessHelperRunner`) is kept apart from reading its answer
(`parse_helper_output`) so the lookup logic can be tested with a fake runner. Pulls run in worker
threads, so the blocking subprocess call never holds up the event loop; it is bounded by a timeout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

HELPER_TIMEOUT = 10.0
HELPER_PREFIX = "docker-credential-"
TOKEN_USERNAME = "<token>"  # a helper's Username meaning "Secret is an identity token"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*\Z")
_MAX_DETAIL = 200


class HelperError(Exception):
    """The helper is missing, failed or answered nonsense. The message never holds a secret."""


@dataclass(frozen=True)
class HelperOutput:
    returncode: int
    stdout: str = field(repr=False)
    stderr: str = field(repr=False)


# (program, server) -> what it printed. Raises HelperError when the program cannot be run at all.
HelperRunner = Callable[[str, str], HelperOutput]


def helper_program(name: object) -> str:
    """`desktop` -> `docker-credential-desktop`; refuses names that could point elsewhere."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise HelperError(f"credential helper name {name!r} is not a plain program suffix")
    return HELPER_PREFIX + name


class SubprocessHelperRunner:
    """Finds the helper on `env`'s PATH and runs it with `env` as its environment."""

    def __init__(self, env: Mapping[str, str], timeout: float = HELPER_TIMEOUT) -> None:
        self._env = dict(env)
        self._timeout = timeout

    def __call__(self, program: str, server: str) -> HelperOutput:
        path = shutil.which(program, path=self._env.get("PATH", os.defpath))
        if path is None:
            raise HelperError(f"{program} is not on PATH")
        try:
            proc = subprocess.run([path, "get"], input=server, capture_output=True, encoding="utf-8",
                                  errors="replace", timeout=self._timeout, env=self._env, check=False)
        except subprocess.TimeoutExpired as exc:
            raise HelperError(f"{program} did not answer within {self._timeout:g}s") from exc
        except OSError as exc:
            raise HelperError(f"{program} could not be started: {exc.strerror or exc}") from exc
        return HelperOutput(proc.returncode, proc.stdout, proc.stderr)


def _detail(text: str) -> str:
    """The first line of a failing helper's output, unless it looks like it carries a secret."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    if "secret" in line.lower() or "{" in line:
        return "(output withheld)"
    return line[:_MAX_DETAIL] or "(no output)"


def parse_helper_output(program: str, out: HelperOutput) -> tuple[str, str] | None:
    """(username, secret), or None when the helper holds nothing for the server."""
    if out.returncode != 0:
        text = out.stdout.strip() or out.stderr.strip()
        # docker-credential-helpers' ErrCredentialsNotFound; a miss, not a failure.
        if "credentials not found" in text.lower():
            return None
        raise HelperError(f"{program} get exited with status {out.returncode}: {_detail(text)}")
    try:
        doc = json.loads(out.stdout)
    except json.JSONDecodeError as exc:
        raise HelperError(f"{program} get did not print JSON") from exc
    if not isinstance(doc, dict):
        raise HelperError(f"{program} get did not print a JSON object")
    user, secret = doc.get("Username", ""), doc.get("Secret", "")
    if not isinstance(user, str) or not isinstance(secret, str):
        raise HelperError(f"{program} get printed a non-string Username or Secret")
    if not secret:
        return None
    return user, secret
