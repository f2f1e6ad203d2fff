"""A listening address (host and port), as app files, settings, listeners and workers name it."""

from __future__ import annotations

from dataclasses import dataclass

_WILDCARD_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1"}


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    """Host name or IP literal without brackets."""
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def loopback_host(self) -> str:
        """The host to reach this address from the same machine: loopback for a wildcard bind."""
        return _WILDCARD_LOOPBACK.get(self.host, self.host)

    def url(self, scheme: str = "http") -> str:
        # Spin prints a browsable URL; 0.0.0.0 / :: are not browsable, so show loopback as Spin does.
        host = self.loopback_host()
        shown = f"[{host}]" if ":" in host else host
        return f"{scheme}://{shown}:{self.port}"
