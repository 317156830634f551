"""What one WebSocket message costs in task switches (statemodel.stream.websocket's two
shortcuts), and that the shortcuts keep the library's semantics: order, queued messages,
the end reported by get_message(). Counted on virtual time, never timed."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed

from statemodel.net.sim import SimNetwork
from statemodel.stream import websocket

SIZES = dict(message_queue_size=64, max_message_size=1 << 20, receive_buffer_size=1 << 16)


def run(fn, *args):
    return trio.run(fn, *args, clock=trio.testing.MockClock(autojump_threshold=0))


class Steps(trio.abc.Instrument):
    """Task steps per task name (a wakeup or a yield is one)."""

    def __init__(self) -> None:
        self.by_name: dict[str, int] = {}

    def before_task_step(self, task) -> None:
        self.by_name[task.name] = self.by_name.get(task.name, 0) + 1

    def of(self, suffix: str) -> int:
        return sum(n for name, n in self.by_name.items() if name.endswith(suffix))


async def _pair(nursery):
    """A client and a server WebSocket over one sim link (no latency)."""
    net = SimNetwork(0)
    listener = net.listener()
    client_stream = await net.connect()
    server_stream = await listener.accept()
    got: list = []

    async def serve(task_status=trio.TASK_STATUS_IGNORED):
        got.append(await websocket.accept(nursery, server_stream, **SIZES))
        task_status.started()

    async with trio.open_nursery() as handshake:
        handshake.start_soon(serve)
        client = await websocket.connect(nursery, client_stream, "sim", "/", **SIZES)
    return client, got[0]


def test_delivered_messages_cost_the_reader_one_step_each_in_order_after_those_queued():
    async def main():
        async with trio.open_nursery() as nursery:
            client, server = await _pair(nursery)
            await client.send_message("queued-1")
            await client.send_message("queued-2")
            await trio.testing.wait_all_tasks_blocked()
            seen: list = []
            queued = server.deliver_to(seen.append)  # what arrived before: for the caller
            steps = Steps()
            trio.lowlevel.add_instrument(steps)
            for i in range(10):
                await client.send_message(f"m{i}")
                await trio.sleep(0.001)  # one message per delivery
            trio.lowlevel.remove_instrument(steps)
            server.deliver_to(None)
            await client.send_message("after")
            back = await server.get_message()
            await client.aclose()
            with pytest.raises(ConnectionClosed):
                await server.get_message()
            nursery.cancel_scope.cancel()
        return queued, seen, back, steps

    queued, seen, back, steps = run(main)
    assert queued == ["queued-1", "queued-2"]
    assert seen == [f"m{i}" for i in range(10)]
    assert back == "after"
    # the library's reader task wakes once per message; no second task takes it from a channel
    assert steps.of("reader") == 10, steps.by_name


def test_an_uncontended_send_is_one_schedule_point():
    async def main():
        async with trio.open_nursery() as nursery:
            client, server = await _pair(nursery)
            steps = Steps()

            async def sender():
                for i in range(10):
                    await client.send_message(f"m{i}")

            trio.lowlevel.add_instrument(steps)
            nursery.start_soon(sender, name="sender")
            got = [await server.get_message() for _ in range(10)]
            trio.lowlevel.remove_instrument(steps)
            nursery.cancel_scope.cancel()
        return got, steps

    got, steps = run(main)
    assert got == [f"m{i}" for i in range(10)]
    # its first step, then send_all's checkpoint for each message (the lock took one more each)
    assert steps.of("sender") == 11, steps.by_name


class Spawned(trio.abc.Instrument):
    """Names of the tasks spawned while installed."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def task_spawned(self, task) -> None:
        self.names.append(task.name.rsplit(".", 1)[-1])


def test_an_opening_handshake_spawns_only_the_library_reader_on_each_side():
    """Every reconnect runs one handshake on each side. Waiting for the handshake *or* the
    reader's end was a race of two tasks in a nursery per side (four spawns and two nurseries
    per reconnect, ~5% of a loopback resume's CPU); the reader's end now cancels the one
    waiting task."""
    async def main():
        async with trio.open_nursery() as nursery:
            spawned = Spawned()
            trio.lowlevel.add_instrument(spawned)
            client, server = await _pair(nursery)
            trio.lowlevel.remove_instrument(spawned)
            await client.send_message("hi")
            got = await server.get_message()
            nursery.cancel_scope.cancel()
        return got, spawned.names

    got, names = run(main)
    assert got == "hi"
    assert sorted(names) == ["reader", "reader", "serve"], names  # `serve` is _pair's own


def test_a_client_handshake_ends_at_once_when_the_server_leaves_before_answering():
    """The reader's end (EOF) wakes the waiting handshake: None, in no virtual time, not
    after the caller's timeout."""
    async def main():
        net = SimNetwork(0)
        listener = net.listener()
        client_stream = await net.connect()
        server_stream = await listener.accept()
        async with trio.open_nursery() as nursery:
            async def leave():
                await server_stream.receive_some(1)  # the upgrade request is on its way
                await trio.aclose_forcefully(server_stream)

            nursery.start_soon(leave)
            start = trio.current_time()
            with trio.move_on_after(10):
                ws = await websocket.connect(nursery, client_stream, "sim", "/", **SIZES)
            took = trio.current_time() - start
            nursery.cancel_scope.cancel()
        return ws, took

    ws, took = run(main)
    assert ws is None
    assert took < 1.0  # virtual seconds: woken by the reader's end, not the 10 s bound
