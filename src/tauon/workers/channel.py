"""Framed messages between the daemon and its worker processes, with listening sockets attached.

A message is a pickled dict behind a 4-byte length; a listening socket travels with it as SCM_RIGHTS
ancillary data (one socket, shared by every process: a worker that closes its copy drops nothing,
unlike SO_REUSEPORT, whose per-socket accept queues are reset on close). Pickle is safe here: both
ends are the same tauon, connected by a socketpair the daemon created for its own child.
"""

from __future__ import annotations

import pickle
import socket
import struct
from collections import deque
from typing import Any

import anyio

RawMessage = dict[str, Any]
"""A message as it travels (workers/messages.py encodes and decodes the typed ones)."""

_HEADER = struct.Struct("!I")
MAX_MESSAGE = 64 * 1024 * 1024
"""A plan is a few KB; anything near this is a corrupted stream, not a message."""


_LOST = -1
"""A socket that was sent but could not be received (the receiver had no descriptor free)."""


class ChannelClosed(Exception):
    """The other end has gone (the worker died, or the daemon did)."""


class Channel:
    """One end of the socketpair. Sends are whole messages; receives are async and in order."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self._buffer = bytearray()
        self._fds: deque[int] = deque()
        self._send_lock = anyio.Lock()
        self.closed = False

    async def send(self, message: RawMessage, sock: socket.socket | None = None) -> None:
        """Send `message`; `sock` (a listening socket) goes with it, its fd duplicated by the kernel."""
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        frame = _HEADER.pack(len(data)) + data
        async with self._send_lock:
            if self.closed:  # e.g. a request to a worker whose death is being handled
                raise ChannelClosed("channel closed")
            view = memoryview(frame)
            fds = [sock.fileno()] if sock is not None else []
            while view:
                await anyio.wait_writable(self.sock)
                try:
                    # The fds ride on the first byte of the frame; later chunks go without them.
                    sent = socket.send_fds(self.sock, [view], fds) if fds else self.sock.send(view)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    self.closed = True
                    raise ChannelClosed(str(exc)) from None
                fds = []
                view = view[sent:]

    async def receive(self) -> tuple[RawMessage, socket.socket | None]:
        """The next message and the socket sent with it (if its `fd` key says one was)."""
        while True:
            frame = self._take_frame()
            if frame is not None:
                message: RawMessage = pickle.loads(frame)
                sock = None
                if message.get("fd"):
                    if not self._fds:
                        raise ChannelClosed("a message announced a socket that did not arrive")
                    fd = self._fds.popleft()
                    if fd == _LOST:
                        message["fd_lost"] = True  # this process is out of descriptors, not the channel
                    else:
                        sock = socket.socket(fileno=fd)
                return message, sock
            await self._fill()

    def _take_frame(self) -> bytes | None:
        buf = self._buffer
        if len(buf) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(buf)
        if size > MAX_MESSAGE:
            raise ChannelClosed(f"a {size}-byte message: the stream is corrupted")
        if len(buf) < _HEADER.size + size:
            return None
        frame = bytes(buf[_HEADER.size:_HEADER.size + size])
        del buf[:_HEADER.size + size]
        return frame

    async def _fill(self) -> None:
        while True:
            if self.closed:
                raise ChannelClosed("channel closed")
            await anyio.wait_readable(self.sock)
            try:
                data, fds, _flags, _addr = socket.recv_fds(self.sock, 256 * 1024, 8)
            except BlockingIOError:
                continue
            except OSError as exc:
                self.closed = True
                raise ChannelClosed(str(exc)) from None
            self._fds.extend(fds)
            if _flags & socket.MSG_CTRUNC:  # the kernel could not install the fd: no descriptor free
                self._fds.append(_LOST)
            if not data:
                self.closed = True
                raise ChannelClosed("the other end closed the channel")
            self._buffer += data
            return

    def close(self) -> None:
        self.closed = True
        for fd in self._fds:
            socket.socket(fileno=fd).close()
        self._fds.clear()
        self.sock.close()
