"""`[llm_compute]` of a runtime config, as Spin's factor-llm (spin.rs `LlmCompute`) reads it:
`type = "spin"` (the local engine: tauon answers Spin's local-model error, as without the table) or
`type = "remote_http"` with `url`, `auth_token` and `api_type` ("default": Spin's own /infer and
/embed protocol; "open_ai": /v1/chat/completions and /v1/embeddings). The token never shows in a
repr, log line or error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tauon.runtimeconfig.errors import RuntimeConfigError

API_TYPES = ("default", "open_ai")


@dataclass(frozen=True, slots=True)
class RemoteLlmConfig:
    url: str = field(repr=False)
    """May hold user:password@ (never shown)."""
    auth_token: str = field(repr=False)
    api_type: str = "default"


def llm_compute(value: Any) -> RemoteLlmConfig | None:
    """None for no table or `type = "spin"`."""
    if value is None:
        return None
    where = "llm_compute"
    if not isinstance(value, dict):
        raise RuntimeConfigError("must be a table", where=where, hint='[llm_compute] type = "remote_http"')
    kind = value.get("type")
    if kind == "spin":
        extra = sorted(set(value) - {"type"})
        if extra:
            raise RuntimeConfigError(f"unknown key(s) {', '.join(map(repr, extra))}", where=where,
                                     hint='type "spin" takes no other keys')
        return None
    if kind != "remote_http":
        raise RuntimeConfigError(f"unknown type {kind!r}", where=f"{where}.type",
                                 hint='tauon supports "spin" and "remote_http"')
    unknown = sorted(set(value) - {"type", "url", "auth_token", "api_type"})
    if unknown:
        raise RuntimeConfigError(f"unknown key(s) {', '.join(map(repr, unknown))}", where=where,
                                 hint="remote_http takes url, auth_token and api_type")
    url, token = value.get("url"), value.get("auth_token")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise RuntimeConfigError("must be an http:// or https:// URL", where=f"{where}.url",
                                 hint='e.g. url = "https://llm.internal"')
    if not isinstance(token, str):
        raise RuntimeConfigError("is required (a string)", where=f"{where}.auth_token")
    api_type = value.get("api_type", "default")
    if api_type not in API_TYPES:
        raise RuntimeConfigError(f"unknown api_type {api_type!r}", where=f"{where}.api_type",
                                 hint='"default" (Spin\'s protocol) or "open_ai"')
    return RemoteLlmConfig(url=str(url), auth_token=token, api_type=api_type)
