"""The bridge on the real clock: real sockets need it (MockClock's autojump skips kernel waits)."""

from __future__ import annotations

import functools

import pytest
import trio
from hypothesis import settings, strategies as st
from hypothesis.stateful import initialize, invariant, rule, run_state_machine_as_test

from statemodel.bridge import JobTimeout, TrioStateMachine


async def _echo(stream: trio.SocketStream) -> None:
    async with stream:
        with trio.move_on_after(10):
            async for data in stream:
                await stream.send_all(data)


class _Stuck(TrioStateMachine):
    real_time = True

    @rule()
    def idle(self) -> None:
        pass


class LoopbackEcho(TrioStateMachine):
    """Each rule round-trips bytes through a loopback TCP echo server in the machine's nursery."""

    real_time = True

    @initialize()
    def listen(self) -> None:
        self.port = self.run(self._listen)
        self.sent = self.received = b""

    async def _listen(self) -> int:
        listeners = await self.nursery.start(functools.partial(trio.serve_tcp, _echo, 0, host="127.0.0.1"))
        self.conn = await trio.open_tcp_stream("127.0.0.1", listeners[0].socket.getsockname()[1])
        return listeners[0].socket.getsockname()[1]

    @rule(data=st.binary(min_size=1, max_size=64))
    def round_trip(self, data: bytes) -> None:
        self.sent += data
        self.received += self.run(self._round_trip, data, timeout=10)

    async def _round_trip(self, data: bytes) -> bytes:
        await self.conn.send_all(data)
        got = b""
        while len(got) < len(data):
            got += await self.conn.receive_some(len(data) - len(got))
        return got

    @invariant()
    def echoed_in_order(self) -> None:
        assert self.clock is None
        assert getattr(self, "received", b"") == getattr(self, "sent", b"")

    async def trio_teardown(self) -> None:
        if hasattr(self, "conn"):
            await self.conn.aclose()


def test_real_time_machine_does_loopback_tcp_io_in_rules() -> None:
    run_state_machine_as_test(LoopbackEcho, settings=settings(max_examples=5, stateful_step_count=5,
                                                              deadline=None, database=None))


def test_real_time_job_bound_is_in_real_seconds() -> None:
    """A deadlocked job ends in JobTimeout after its (real) bound instead of hanging."""

    m = _Stuck()
    try:
        with pytest.raises(JobTimeout, match="real seconds"):
            m.run(trio.sleep_forever, timeout=0.05)
        assert m.run(trio.lowlevel.checkpoint) is None  # the machine goes on after a timeout
    finally:
        m.teardown()


def test_real_time_default_job_bound_is_short() -> None:
    """job_timeout (600 virtual seconds) would be a 10-minute hang on the real clock."""

    class Stuck(_Stuck):
        real_job_timeout = 0.05

    m = Stuck()
    try:
        with pytest.raises(JobTimeout, match="0.05 real seconds"):
            m.run(trio.sleep_forever)
    finally:
        m.teardown()


class _Ticking(trio.abc.Clock):
    """A clock that moves forward on every read, like the real clock between two reads on a
    busy host, only more so."""

    def __init__(self) -> None:
        self.now = 0.0

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        self.now += 0.6  # past `end` (1.0) on the second read of a turn
        return self.now

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return 0.0


def test_pass_time_never_sleeps_a_negative_time_on_a_moving_clock() -> None:
    """The machine's waits on the real clock read the time once a turn: reading it twice
    (`while now < end: sleep(end - now)`) slept a negative time once the second read was past
    `end`, a ValueError from trio that the 1,000-example tcp run reported as a failure."""
    from statemodel.machine.stream_machine import pass_time

    turns = []

    async def main():
        await pass_time(trio.current_time() + 1.0, 0.5, each=lambda: turns.append(1))

    trio.run(main, clock=_Ticking())
    assert 1 <= len(turns) <= 4
