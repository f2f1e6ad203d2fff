"""`wasi-outbound-http.request`: the Spin 1.x core-module ABI of Spin's buffered outbound HTTP.

This module only moves the call's arguments and result across the guest's memory; the sending, and
Spin's semantics and error cases, are hostif/http_buffered.py's (components reach the same code
through `fermyon:spin/http`, hostif/spin_http.py).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from tauon.executors.legacy_abi import (
    GuestMemory,
    lower_bytes,
    lower_pairs,
    read_bytes,
    read_pairs,
    read_string,
    store_err_case,
    write_u8,
)
from tauon.hostif.http_buffered import RUNTIME_ERROR, HttpError, LegacyHttp, send
from tauon.wasm.slots import SlotHold

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")


def request(mem: GuestMemory, outbound: LegacyHttp, log: Callable[[str], None],
            args: tuple[int, ...], hold: SlotHold) -> None:
    """The import: (method, uri, headers, params, body option, ret) flattened to 11 i32; `hold` is the
    request's run slot, lent while the response is awaited."""
    method, uri_ptr, uri_len, hp, hl, _pp, pl, has_body, bp, bl, ret = args
    uri = read_string(mem, uri_ptr, uri_len)
    headers = read_pairs(mem, hp, hl)
    if pl:
        log("the HTTP params field is deprecated (ignored, as Spin ignores it)")
    body = read_bytes(mem, bp, bl) if has_body else None
    try:
        if not 0 <= method < len(METHODS):
            raise HttpError(RUNTIME_ERROR, f"method index {method}")
        with hold.blocked():
            status, response_headers, response_body = send(outbound, METHODS[method], uri, headers, body)
    except HttpError as exc:
        log(f"outbound request to {uri.split('?', 1)[0]} failed: {exc}")
        store_err_case(mem, ret, 4, exc.case)
        return
    headers_ptr, headers_len = lower_pairs(mem, response_headers)
    body_ptr, body_len = lower_bytes(mem, response_body)
    write_u8(mem, ret, 0)
    # response{status u16 @4, headers option<list> @8, body option<list<u8>> @20}
    mem.write(ret + 4, struct.pack("<H2xB3xIIB3xII", status, 1, headers_ptr, headers_len,
                                   1, body_ptr, body_len))
