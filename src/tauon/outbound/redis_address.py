"""Redis addresses as redis-rs reads them: what the runtime config checks at load and the client
connects to. Apart from the client so that reading an address does not import redis-py (and, through
it, OpenTelemetry's SDK: 90 ms of every daemon's start-up)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from tauon.outbound.limits import OutboundError


@dataclass(frozen=True, slots=True)
class RedisTarget:
    host: str
    port: int
    db: int
    username: str | None
    password: str | None
    tls: bool

    @property
    def where(self) -> str:
        """host:port, for log lines and errors (never the credentials)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(address: str) -> RedisTarget:
    """redis-rs' URL forms. Raises OutboundError('invalid-address')."""
    try:
        parts = urlsplit(address)
        port = parts.port
        path = parts.path.strip("/")
        db = int(path) if path else 0
    except ValueError:
        raise OutboundError("invalid-address") from None
    if parts.scheme not in ("redis", "rediss") or not parts.hostname or db < 0:
        raise OutboundError("invalid-address")
    return RedisTarget(
        host=parts.hostname,
        port=port if port is not None else 6379,
        db=db,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        tls=parts.scheme == "rediss",
    )
