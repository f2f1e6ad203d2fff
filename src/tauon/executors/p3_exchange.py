"""The state one WASIp3 request shares between the guest's thread and the event loop
(executors/wasi_http_p3.py): what the guest answered (`Exchange`), and the host's ends of the
request's body and trailers (`Inbound`)."""

from __future__ import annotations

from typing import Any

from tauon.hostif.http_p3 import Response
from tauon.wasm.runtime.async_host import FutureReader, FutureWriter, StreamReader, StreamWriter, listen


class Exchange:
    """What the guest thread tells the event loop: the response, or a failure."""

    def __init__(self, wake: Any) -> None:
        self.wake = wake
        self.head: tuple[int, list[tuple[str, bytes]]] | None = None
        self.body: StreamReader | None = None
        self.sent: FutureWriter | None = None
        self.failure: str | None = None
        self.done = False
        self.error: BaseException | None = None
        self.accepts_trailers = False
        """The client sent `TE: trailers`."""
        self.trailers: FutureReader | None = None
        """The response's trailers future, when they may be sent."""

    def respond(self, result: Any) -> None:
        """`task.return` of `handle` (guest thread): result<response, error-code>."""
        tag, payload = result
        if tag != "ok":
            self.failure = f"the guest returned the error {error_text(payload)}"
            self.wake()
            return
        response: Response = payload
        self.body = response.body
        self.sent = response.done
        if response.trailers is not None and self.trailers is not response.trailers:
            response.trailers.close()  # they cannot be sent: the guest's write sees the reader gone
        if self.body is not None:
            listen(self.body, self.wake)
        self.head = (response.status, list(response.headers.entries))
        self.wake()


class Inbound:
    """The host's ends of the request's body stream and trailers future."""

    def __init__(self, body: StreamWriter, trailers: FutureWriter, fields: list[tuple[bytes, bytes]] | None):
        self.body = body
        self.trailers = trailers
        self.fields = fields
        """The server's list of the request's trailer fields, complete once the body has ended."""

    def end(self) -> None:
        """The body is complete: the trailers future says what came after it."""
        self.body.close()
        self.trailers.write(("ok", list(self.fields) if self.fields else None))

    def cut(self) -> None:
        """The body will not be complete (client gone, over the limit): neither is the future."""
        self.body.close()
        self.trailers.close()


def error_text(code: Any) -> str:
    if isinstance(code, tuple) and code:
        return str(code[0]) if code[1] is None else f"{code[0]}({code[1]!r})"
    return repr(code)


__all__ = ["Exchange", "Inbound", "error_text"]
