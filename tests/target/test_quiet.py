"""The real clock's slice after a rule (target/quiet.py) ends once nothing can move, and only then.

Virtual time (MockClock): ``wait_all_tasks_blocked`` wakes before the clock autojumps, so a
slice that ends on idleness ends at the virtual instant it started, one that runs to its
bound ends exactly there."""

from __future__ import annotations

import trio
import trio.testing

from statemodel.net import faults as F
from statemodel.target.proxied import ProxyFront
from statemodel.target.quiet import quiet_or

STEP = 0.007


def run(fn, clock=None):
    return trio.run(fn, clock=clock or trio.testing.MockClock(autojump_threshold=0))


def test_an_idle_world_with_nothing_in_flight_ends_the_slice_at_once() -> None:
    async def main():
        start = trio.current_time()
        ended_quiet = await quiet_or(STEP, lambda: False)
        return ended_quiet, trio.current_time() - start

    assert run(main) == (True, 0.0)


def test_bytes_in_flight_keep_the_slice_until_they_arrive() -> None:
    """Nothing runs while a delivery is due 3 ms later: the slice waits for it, not its bound."""
    async def main():
        arrived = []

        async def delivery():
            await trio.sleep(0.003)
            arrived.append(trio.current_time())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(delivery)
            await trio.testing.wait_all_tasks_blocked()
            start = trio.current_time()
            ended_quiet = await quiet_or(STEP, lambda: not arrived)
            return ended_quiet, start, trio.current_time(), arrived

    ended_quiet, start, end, arrived = run(main)
    assert ended_quiet
    assert arrived and arrived[0] <= end < start + STEP


def test_a_network_that_never_empties_gets_the_whole_slice() -> None:
    async def main():
        start = trio.current_time()
        ended_quiet = await quiet_or(STEP, lambda: True)
        return ended_quiet, trio.current_time() - start

    ended_quiet, waited = run(main)
    assert not ended_quiet and waited == STEP


def test_a_busy_world_gets_the_whole_slice() -> None:
    """A task that keeps running (a transfer, a heartbeat burst) is not idle: no early end.
    (It moves the virtual clock itself: a sleeping task would count as blocked.)"""
    clock = trio.testing.MockClock()

    async def main():
        async def busy():
            while True:
                clock.jump(0.0005)
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(busy)
            start = trio.current_time()
            ended_quiet = await quiet_or(STEP, lambda: False, cushion=0.001)
            nursery.cancel_scope.cancel()
            return ended_quiet, trio.current_time() - start

    ended_quiet, waited = run(main, clock)
    assert not ended_quiet and STEP <= waited < STEP + 0.001


def test_the_proxy_reports_delayed_bytes_in_flight_and_held_ones_not() -> None:
    """ProxyFront.in_flight: bytes under latency are on their way until read; bytes a clog
    holds wait for a heal, not for time, so they do not keep the slice."""
    async def main():
        front = ProxyFront(("127.0.0.1", 9), seed=0, record=False, connect_timeout=1.0, base_latency=None)
        link = front.net._new_link()
        seen = [front.in_flight()]
        front.net.apply(F.Latency(seconds=0.005), link.id)
        link.c2s.write(b"hello")
        seen.append(front.in_flight())
        assert await link.c2s.read() == b"hello"
        seen.append(front.in_flight())
        front.net.apply(F.Clog(), link.id)
        link.s2c.write(b"held")
        seen.append(front.in_flight())
        return seen

    assert run(main) == [False, True, False, False]


def test_the_real_clock_machine_ends_its_turns_by_quiet_or_and_the_sim_keeps_its_sleep(monkeypatch) -> None:
    """The wiring: on tcp every step's turn goes through quiet_or with the target's in_flight;
    on the sim none does (its trace is pinned by the clean runs)."""
    import statemodel.machine.stream_machine as SM
    from statemodel.machine import MachineOptions, machine_class

    calls = []
    real = SM.quiet_or

    async def recording(bound, in_flight, *args, **kwargs):
        calls.append((bound, in_flight))
        return await real(bound, in_flight, *args, **kwargs)

    monkeypatch.setattr(SM, "quiet_or", recording)
    for transport in ("sim", "tcp"):
        state = machine_class(MachineOptions(transport=transport))()
        try:
            state.boot(seed=1, chunks=[], context=0)
            calls.clear()
            state.degrade(fault=F.Latency(seconds=0.001))
            state.heal()
            if transport == "sim":
                assert calls == []
            else:
                assert [bound for bound, _ in calls] == [SM.STEP, SM.STEP]
                assert all(in_flight == state.target.in_flight for _, in_flight in calls)
        finally:
            state.teardown()
