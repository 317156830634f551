"""ExternalTarget pieces on real loopback sockets (every await bounded; no timing assertions)."""

from __future__ import annotations

import functools
import random

import trio

from statemodel.machine.options import MachineOptions
from statemodel.net import faults as F
from statemodel.target.external import ExternalTarget


async def _echo(stream: trio.SocketStream) -> None:
    with trio.move_on_after(10):
        try:
            async for data in stream:
                await stream.send_all(data)
        except trio.BrokenResourceError:  # the proxy's Abort resets us too
            pass


async def _upstream(nursery: trio.Nursery, handler=_echo) -> int:
    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1]


def test_concurrent_dials_each_get_their_own_link_id() -> None:
    """Aborting the link a dial reported breaks exactly that dial's connection."""

    async def main():
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                port = await _upstream(nursery)
                target = ExternalTarget(MachineOptions(target=f"ws://127.0.0.1:{port}/", transport="tcp"), 0)
                await target.start(nursery)
                dials: list = [None] * 6

                async def dial(i):
                    dials[i] = await target.dial()

                async with trio.open_nursery() as dialers:
                    for i in range(6):
                        dialers.start_soon(dial, i)
                links = [link for _, link in dials]
                assert sorted(links) == sorted(target.net.links)
                victim = 3
                assert target.apply(F.Abort(), links[victim]) is True
                for i, (stream, link) in enumerate(dials):
                    payload = f"hello {i}".encode()
                    try:
                        await stream.send_all(payload)
                        got = b""
                        while len(got) < len(payload):
                            data = await stream.receive_some(100)
                            if not data:
                                break
                            got += data
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        got = None
                    assert (got is None or got != payload) == (i == victim), (i, got)
                assert target.apply(F.Abort(), links[victim]) is False  # a dead link: skipped
                for stream, _ in dials:
                    await stream.aclose()
                await target.stop()
                nursery.cancel_scope.cancel()

    trio.run(main)


def test_dial_during_partition_is_bounded_and_leaves_no_stale_mapping() -> None:
    """A network-wide partition stalls the proxy's accept: dial times out (like a SYN that
    cannot cross); after heal, a new dial still gets its own link."""

    async def main():
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                port = await _upstream(nursery)
                options = MachineOptions(target=f"ws://127.0.0.1:{port}/", transport="tcp")
                target = ExternalTarget(options, 0, connect_timeout=0.2)
                await target.start(nursery)
                target.apply(F.Partition(), None)
                try:
                    await target.dial()
                except trio.TooSlowError:
                    pass
                else:
                    raise AssertionError("dial crossed a partition")
                target.heal()
                stream, link = await target.dial()
                with trio.move_on_after(1):  # let the stalled accept finish and be ignored
                    while len(target.net.links) < 2:
                        await trio.sleep(0.01)
                assert link in target.net.links and target.front._accepted == {}
                await stream.aclose()
                await target.stop()
                nursery.cancel_scope.cancel()

    trio.run(main)


def test_client_sends_the_url_path_and_host() -> None:
    """The WebSocket opening request carries the URL's path, query and host:port."""
    seen, ports = [], []

    async def http_peer(stream: trio.SocketStream) -> None:
        data = b""
        with trio.move_on_after(10):
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                data += chunk
        seen.append(data)
        await stream.aclose()

    async def main():
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                port = await _upstream(nursery, http_peer)
                ports.append(port)
                url = f"ws://127.0.0.1:{port}/streams/v1?tenant=a"
                target = ExternalTarget(MachineOptions(target=url, transport="tcp"), 0)
                await target.start(nursery)

                async def dial():
                    stream, _ = await target.dial()
                    return stream

                client = target.new_client(dial, random.Random(0))
                async with client.run():
                    while not seen:
                        await trio.sleep(0.01)
                await target.stop()
                nursery.cancel_scope.cancel()

    trio.run(main)
    head = seen[0].decode("latin-1").lower()
    assert head.startswith("get /streams/v1?tenant=a http/1.1\r\n")
    assert f"\r\nhost: 127.0.0.1:{ports[0]}\r\n" in head
