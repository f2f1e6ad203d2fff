"""Which host interfaces a component dependency may use, by the capability sets it inherits (pure).

Spin's `crates/capabilities` groups host interfaces into the sets a dependency's `inherit` names
(`"All"`, `{"Some": [...]}`, or nothing = none). Imports of an interface in a set the dependency does
not inherit are satisfied by the deny adapter instead of the host. tauon's deny adapter
(src/tauon/adapters/deny-adapter/) exports the WASI 0.2.0 and fermyon:spin@2.0.0 versions of the
interfaces tauon hosts; a denied import it cannot stand in for (another version, or an interface it
does not export) is refused at load rather than left to the host.
"""

from __future__ import annotations

from collections.abc import Sequence

from tauon.errors import LoadError

CAPABILITY_SETS: dict[str, tuple[str, ...]] = {
    "ai_models": ("fermyon:spin/llm",),
    "allowed_outbound_hosts": (
        "fermyon:spin/http", "fermyon:spin/mysql", "fermyon:spin/postgres", "fermyon:spin/redis",
        "fermyon:spin/mqtt", "spin:mqtt/mqtt", "spin:mysql/mysql", "spin:postgres/postgres",
        "spin:redis/redis", "wasi:http/client", "wasi:http/outgoing-handler",
        "wasi:sockets/ip-name-lookup", "wasi:sockets/tcp-create-socket", "wasi:sockets/tcp",
        "wasi:sockets/udp-create-socket", "wasi:sockets/udp",
    ),
    "environment": ("wasi:cli/environment",),
    "files": ("wasi:filesystem/preopens",),
    "key_value_stores": ("fermyon:spin/key-value", "spin:key-value/key-value", "wasi:keyvalue/store"),
    "sqlite_databases": ("fermyon:spin/sqlite", "spin:sqlite/sqlite"),
    "variables": ("fermyon:spin/config", "fermyon:spin/variables", "spin:variables/variables",
                  "wasi:config/store"),
}
"""Capability set -> the interfaces (without version) it covers."""

DENY_ADAPTER_EXPORTS = (
    "wasi:http/outgoing-handler@0.2.0",
    "wasi:cli/environment@0.2.0",
    "wasi:filesystem/preopens@0.2.0",
    "fermyon:spin/variables@2.0.0",
    "fermyon:spin/key-value@2.0.0",
    "fermyon:spin/sqlite@2.0.0",
    "wasi:config/store@0.2.0-draft-2024-09-27",
)
"""What src/tauon/adapters/deny_adapter.wasm exports (a test checks it against the binary)."""


def base_name(name: str) -> str:
    return name.partition("@")[0]


def capability_set(interface: str) -> str | None:
    base = base_name(interface)
    return next((cap for cap, members in CAPABILITY_SETS.items() if base in members), None)


def deny_plan(imports: Sequence[str], inherit: str | tuple[str, ...], *, what: str) -> dict[str, str]:
    """import -> deny adapter export, for every import the dependency may not take from the host.
    Raises LoadError for a denied import the deny adapter cannot satisfy."""
    if inherit == "all":
        return {}
    inherited = set(inherit)
    plugs: dict[str, str] = {}
    for name in imports:
        capability = capability_set(name)
        if capability is None or capability in inherited:
            continue
        if name not in DENY_ADAPTER_EXPORTS:
            offered = [e for e in DENY_ADAPTER_EXPORTS if base_name(e) == base_name(name)]
            raise LoadError(
                f"{what} imports {name}, which it may not use because it does not inherit "
                f"'{capability}', and tauon's deny adapter cannot stand in for it"
                + (f" (it provides {offered[0]})" if offered else ""),
                hint=f"add '{capability}' to the dependency's inherit, or build the dependency against "
                     + (offered[0] if offered else "interfaces the deny adapter provides"))
        plugs[name] = name
    return plugs
