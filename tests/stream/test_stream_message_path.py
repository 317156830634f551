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
