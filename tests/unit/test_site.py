"""An app's site (server/site.py) as a worker process runs it (workers/child.py's HandedSockets): real
listening sockets handed over, a real uvicorn listener, real HTTP. The generations are real but empty
(no components: every path is Spin's 404), which is all a site looks at."""

from __future__ import annotations

import socket
from pathlib import Path

import anyio
import pytest

from tauon.app.plan import GenerationPlan
from tauon.app.routes import Router
from tauon.metrics import Metrics
from tauon.model.address import Address
from tauon.server.generation import Generation
from tauon.server.site import Site
from tauon.settings import Settings
from tauon.workers.child import HandedSockets


def generation(number: int) -> Generation:
    plan = GenerationPlan(app_id="app.json", reference="r:1", digest=f"sha256:{number:064x}", name="app",
                          version=None, triggers=(), components={})
    return Generation(plan, number, Router.build([]), {})


def listening() -> tuple[socket.socket, Address]:
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock, Address("127.0.0.1", sock.getsockname()[1])


async def get(address: Address) -> int:
    """The status of a GET on a new connection (raw HTTP/1.1: no client set-up to wait for)."""
    with anyio.fail_after(10):
        async with await anyio.connect_tcp(address.host, address.port) as stream:
            await stream.send(b"GET /anything HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
            head = await stream.receive()
    return int(head.split(b" ", 2)[1])


def test_swaps_in_place_moves_to_a_new_socket_and_keeps_the_last_good_on_failure(tmp_path: Path) -> None:
    settings = Settings(watch_dir=tmp_path, state_root=tmp_path, cache_dir=tmp_path, drain_timeout=1.0)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            host = HandedSockets(tg)
            site = Site("app.json", host, tg, Metrics(), settings)
            first_sock, address = listening()
            host.received(1, first_sock)
            gen1, gen2, gen3 = generation(1), generation(2), generation(3)
            assert await site.swap(gen1, address, key=1) is None
            first = site.listener
            assert first is not None and first.key == 1 and host.listeners == {1: first}
            assert await get(address) == 404  # served by gen1's (empty) routes

            # The same key: a pointer change on the same listener; the old generation retires.
            assert await site.swap(gen2, address, key=1) is gen1
            assert site.listener is first and site.switchboard is not None
            assert site.switchboard.current is gen2
            site.retire(gen1)
            with anyio.fail_after(10):
                while not gen1.retired:
                    await anyio.sleep(0.01)

            # A new key whose socket never came: refused; gen2 keeps serving.
            with pytest.raises(RuntimeError, match=r"no listening socket for listener 2 of app\.json"):
                await site.swap(gen3, address, key=2)
            assert site.generation is gen2 and site.listener is first
            assert await get(address) == 404

            # The socket arrives: a new listener on it, and the old one is closed.
            second_sock, second = listening()
            host.received(2, second_sock)
            gen4 = generation(4)
            assert await site.swap(gen4, second, key=2) is gen2
            assert site.listener is not None and site.listener.key == 2
            with anyio.fail_after(10):
                await first.closed.wait()
            assert 1 not in host.listeners and await get(second) == 404
            with pytest.raises(OSError):  # refused
                await get(address)

            await site.close()
            assert gen4.retired and site.listener.closed.is_set() and not host.listeners
            tg.cancel_scope.cancel()

    anyio.run(main)
