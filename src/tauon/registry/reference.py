"""Image references: `registry/repo:tag@sha256:...` parsed, and the path-or-registry decision.

oras-py's `Container` parser is not used: it does not anchor its regular expression, treats `localhost/x`
as a namespace, and neither validates names nor knows Docker Hub's aliases.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tauon.errors import PullError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
# Spin stores Docker Hub credentials under this key (`spin registry login` maps docker.io to it).
DOCKER_HUB_AUTH_KEY = "index.docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_DOMAIN = re.compile(r"(?:[A-Za-z0-9-]+\.)*[A-Za-z0-9-]+(?::[0-9]+)?\Z|\[[0-9A-Fa-f:.]+\](?::[0-9]+)?\Z")
DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}

OCI_REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class Reference:
    """A parsed registry reference. `registry` is normalized (`docker.io` for Docker Hub)."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def auth_key(self) -> str:
        """The host name credentials are stored under (Spin's `resolve_registry()`)."""
        return DOCKER_HUB_AUTH_KEY if self.registry == DOCKER_HUB else self.registry

    @property
    def tag_or_latest(self) -> str:
        return self.tag or "latest"

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def check_digest(digest: str, *, what: str) -> str:
    """Validate `alg:hex` (sha256/384/512, lowercase hex) and return it."""
    alg, _, hexpart = digest.partition(":")
    length = DIGEST_HEX_LENGTHS.get(alg)
    if length is None or len(hexpart) != length or not re.fullmatch(r"[0-9a-f]+", hexpart):
        raise PullError(
            f"{what}: '{digest}' is not a valid digest",
            hint="expected sha256:<64 lowercase hex> (or sha384/sha512)",
        )
    return digest


def parse_reference(text: str) -> Reference:
    """Parse `[registry/]repo[:tag][@digest]` following Docker's reference grammar.

    The first path element is a registry when it contains `.` or `:` or is `localhost`; otherwise the
    reference names Docker Hub, where single names live under `library/`. No tag and no digest means
    `latest`.
    """
    original = text
    if not text or text != text.strip():
        raise PullError(f"reference '{original}' is empty or has surrounding spaces")
    if "://" in text:
        raise PullError(
            f"reference '{original}' has a URL scheme",
            hint="write registry/repository:tag without http:// or https://; use insecure for plain HTTP",
        )
    digest: str | None = None
    if "@" in text:
        text, digest = text.split("@", 1)
        check_digest(digest, what=f"reference '{original}'")
    head, slash, rest = text.partition("/")
    if slash and ("." in head or ":" in head or head == "localhost"):
        registry, remainder = head, rest
    else:
        registry, remainder = DOCKER_HUB, text
    if not _DOMAIN.match(registry):
        raise PullError(f"reference '{original}': '{registry}' is not a valid registry host")
    tag: str | None = None
    last = remainder.rsplit("/", 1)[-1]
    if ":" in last:
        remainder, tag = remainder.rsplit(":", 1)
        if not _TAG.match(tag):
            raise PullError(f"reference '{original}': tag '{tag}' is not valid",
                            hint="tags are [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
    parts = remainder.split("/")
    for part in parts:
        if not _COMPONENT.match(part):
            raise PullError(
                f"reference '{original}': repository element '{part}' is not valid",
                hint="repository names are lowercase letters, digits and . _ - separators",
            )
    if registry.lower() in _HUB_ALIASES:
        registry = DOCKER_HUB
        if len(parts) == 1:
            parts = ["library", *parts]
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry=registry, repository="/".join(parts), tag=tag, digest=digest)


@dataclass(frozen=True)
class LayoutRef:
    """An OCI image-layout directory, optionally with a `:tag` or `@digest` selecting a manifest."""

    directory: Path
    tag: str | None = None
    digest: str | None = None


def _is_layout(path: Path) -> bool:
    return (path / "oci-layout").is_file() and (path / "index.json").is_file()


def find_layout(text: str, base_dir: Path) -> LayoutRef | None:
    """Decide whether `text` names an OCI layout directory rather than a registry.

    It is a path when it starts with `/`, `./`, `../` or `~`, or when it (minus a `:tag`/`@digest`
    suffix) is an existing directory relative to `base_dir`. An explicit path that is not a layout
    directory is an error rather than a registry lookup.
    """
    explicit = text.startswith(("/", "./", "../", "~")) or text in (".", "..")
    candidates: list[tuple[str, str | None, str | None]] = [(text, None, None)]
    if "@" in text:
        before, at_digest = text.rsplit("@", 1)
        candidates.append((before, None, at_digest))
    # A tag suffix only counts after the last `/`, so `../dir:v1` works but `./a:b/c` stays a path.
    head, _, last = text.rpartition("/")
    if ":" in last:
        name, at_tag = last.rsplit(":", 1)
        candidates.append((f"{head}/{name}" if head else name, at_tag, None))
    for path_text, tag, digest in candidates:
        path = Path(path_text).expanduser()
        if not path.is_absolute():
            path = base_dir / path
        if path.is_dir() and (explicit or _is_layout(path)):
            if not _is_layout(path):
                raise PullError(
                    f"'{text}' is a directory but not an OCI image layout",
                    hint="an OCI layout directory holds 'oci-layout' and 'index.json'",
                )
            if digest is not None:
                check_digest(digest, what=f"layout reference '{text}'")
            return LayoutRef(directory=path.resolve(), tag=tag, digest=digest)
    if explicit:
        raise PullError(
            f"OCI layout directory '{text}' does not exist",
            hint=f"relative paths are resolved against {base_dir}",
        )
    return None
