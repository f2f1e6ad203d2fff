"""Which export a component is served by, from its export names (spin-spec §4.1): the HTTP handler,
the WAGI command, or the Redis handler. Pure checks; executors/builder.py builds what they choose."""

from __future__ import annotations

import re

import wasmtime
from wasmtime.component import Component

from tauon.errors import LoadError
from tauon.executors.redis_component import ASYNC_EXPORT, EXPORT
from tauon.hostif.linker import split_name, supported_version

WASI_HTTP_02 = "wasi-http-0.2"
WASI_HTTP_RC = "wasi-http-rc"
WASI_HTTP_03 = "wasi-http-0.3"
SPIN_INBOUND = "spin-inbound-http"
RC_VERSIONS = ("0.2.0-rc-2023-10-18", "0.2.0-rc-2023-11-10")
EXPECTED = ("wasi:http/incoming-handler@0.2.x (any 0.2 patch), "
            "wasi:http/incoming-handler@0.2.0-rc-2023-10-18, "
            "wasi:http/incoming-handler@0.2.0-rc-2023-11-10, wasi:http/handler@0.3.x, "
            "fermyon:spin/inbound-http")


def handler_kind(export: str) -> str | None:
    """The handler ABI an export name stands for, or None if it is not an HTTP handler."""
    if export == "fermyon:spin/inbound-http":
        return SPIN_INBOUND
    base, version = split_name(export)
    if base == "wasi:http/incoming-handler" and version is not None:
        if version in RC_VERSIONS:
            return WASI_HTTP_RC
        if re.fullmatch(r"0\.2\.\d+", version):
            return WASI_HTTP_02
    if base == "wasi:http/handler" and version is not None and version.startswith("0.3."):
        return WASI_HTTP_03
    return None


def select_handler(exports: list[str], *, component_id: str) -> tuple[str, str]:
    """(kind, export name) of the one HTTP handler among `exports`. Raises LoadError."""
    field = f"components.{component_id}.source"
    found = [(kind, name) for name in exports if (kind := handler_kind(name)) is not None]
    if not found:
        raise LoadError(
            f"component '{component_id}' exports no HTTP handler (it exports: "
            f"{', '.join(exports) or 'nothing'})", field=field,
            hint=f"an HTTP component must export one of: {EXPECTED}")
    if len({kind for kind, _ in found}) > 1 or len(found) > 1:
        raise LoadError(
            f"component '{component_id}' exports multiple different handlers: "
            f"{', '.join(name for _, name in found)}", field=field,
            hint="build the component with exactly one HTTP handler export")
    return found[0]


def select_command(exports: list[str], *, component_id: str) -> str:
    """The `wasi:cli/run@0.2.x` export a WAGI component must have. Raises LoadError."""
    for name in exports:
        base, version = split_name(name)
        if base == "wasi:cli/run" and supported_version(version):
            return name
    raise LoadError(
        f"component '{component_id}' is used with the WAGI executor but exports no wasi:cli/run@0.2.x "
        f"(it exports: {', '.join(exports) or 'nothing'})", field=f"components.{component_id}.source",
        hint="a WAGI program must be a WASI command: a module with _start, or a component exporting "
             "wasi:cli/run (e.g. made with the preview1 command adapter)")


def component_exports(component: Component, engine: wasmtime.Engine) -> list[str]:
    return list(component.type.exports(engine))


def select_redis_export(exports: list[str], *, component_id: str) -> None:
    """Check that `exports` hold exactly Spin's synchronous Redis handler. Raises LoadError."""
    field = f"components.{component_id}.source"
    async_exports = [name for name in exports if split_name(name)[0] == ASYNC_EXPORT]
    if EXPORT in exports and async_exports:
        raise LoadError(f"component '{component_id}' exports multiple Redis interfaces: {EXPORT}, "
                        f"{', '.join(async_exports)}", field=field,
                        hint="build the component with exactly one Redis handler export")
    if async_exports:
        raise LoadError(
            f"component '{component_id}' exports {async_exports[0]} (component-model async), which "
            "tauon cannot host: the wasmtime Python binding has no component-model async support",
            field=field, hint=f"build the component for {EXPORT} (e.g. spin-sdk 3.x for Python, "
                              "world spin-redis)")
    if EXPORT not in exports:
        raise LoadError(
            f"component '{component_id}' is used by a Redis trigger but does not export a Redis "
            f"interface (it exports: {', '.join(exports) or 'nothing'})", field=field,
            hint=f"a Redis component must export {EXPORT} (handle-message), or be a Spin 1.x module "
                 "exporting handle-redis-message")
