"""The trio bridge: virtual time, results/errors, background crashes, timeouts, lifecycle."""

from __future__ import annotations

import gc
import os
import threading
import traceback

import greenlet
import pytest
import trio
import trio.testing
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule, run_state_machine_as_test

from statemodel.bridge import BridgeClosed, JobTimeout, TrioStateMachine

pytestmark = pytest.mark.timeout(60)

FAST = settings(max_examples=10, database=None, deadline=None, phases=[Phase.generate], stateful_step_count=10)


class Plain(TrioStateMachine):
    """A machine used directly (outside Hypothesis) to poke at the bridge."""

    @rule()
    def nothing(self) -> None:
        pass


def _ends(machine: TrioStateMachine) -> None:
    machine.teardown()
    assert machine._loop.dead


# ----- virtual time ----------------------------------------------------------------------


class Ticker(TrioStateMachine):
    """A background task ticks every virtual second (at .5 offsets, so never tied with jobs)."""

    async def trio_setup(self) -> None:
        self.ticks = 0
        self.sleeps = 0
        self.last_seen: tuple[float, int] | None = None

        async def tick() -> None:
            await trio.sleep(0.5)
            while True:
                self.ticks += 1
                await trio.sleep(1)

        self.nursery.start_soon(tick)

    def _frozen_since_last_step(self) -> None:
        # Nothing ran and no time passed between the end of the previous step and now.
        if self.last_seen is not None:
            assert (self.clock.current_time(), self.ticks) == self.last_seen

    @rule(seconds=st.integers(0, 5))
    def sleep(self, seconds: int) -> None:
        self._frozen_since_last_step()
        before = self.ticks
        self.run(trio.sleep, seconds)
        self.sleeps += seconds
        assert self.ticks - before == seconds
        self.last_seen = (self.clock.current_time(), self.ticks)

    @rule()
    def idle(self) -> None:
        self._frozen_since_last_step()

    @invariant()
    def clock_is_sum_of_sleeps(self) -> None:
        assert self.clock.current_time() == self.sleeps
        self.last_seen = (self.clock.current_time(), self.ticks)


def test_virtual_time_moves_only_while_a_job_runs() -> None:
    run_state_machine_as_test(Ticker, settings=FAST)


# ----- results and errors ----------------------------------------------------------------


async def _add(a: int, b: int) -> int:
    await trio.sleep(1)
    return a + b


async def _fails_deep_inside() -> None:
    await trio.sleep(0)
    raise KeyError("from the job")


def test_run_returns_the_result_and_reraises_with_the_original_traceback() -> None:
    m = Plain()
    try:
        assert m.run(_add, 2, 3) == 5
        with pytest.raises(KeyError, match="from the job") as info:
            m.run(_fails_deep_inside)
        frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
        assert "_fails_deep_inside" in frames
        # The loop survives a failing job.
        assert m.run(_add, 1, 1) == 2
    finally:
        _ends(m)


def test_two_machines_in_one_thread_each_run_on_their_own_clock() -> None:
    """Each switch into a loop reinstalls that run's thread state (trio keeps it thread-local)."""
    a = Plain()
    try:
        a.run(trio.sleep, 10)
        b = Plain()  # created while a's run is parked
        assert b.run(_add, 1, 2) == 3
        a.start_soon(trio.sleep, 1)  # from plain sync code, after b ran
        assert a.run(_add, 2, 2) == 4
        assert (a.clock.current_time(), b.clock.current_time()) == (11, 1)
        _ends(b)
        assert a.run(_add, 3, 3) == 6
        assert a.clock.current_time() == 12
    finally:
        _ends(a)


def test_calling_run_from_inside_a_job_is_a_clear_error() -> None:
    m = Plain()

    async def nested() -> None:
        m.run(trio.sleep, 0)

    try:
        with pytest.raises(RuntimeError, match="await the function instead"):
            m.run(nested)
    finally:
        _ends(m)


# ----- background crashes ----------------------------------------------------------------


async def _crash_after(seconds: float) -> None:
    await trio.sleep(seconds)
    raise ValueError("background task broke")


def test_background_crash_surfaces_from_the_next_run_unwrapped() -> None:
    m = Plain()
    m.nursery.start_soon(_crash_after, 3)
    m.run(trio.sleep, 1)  # not yet
    with pytest.raises(ValueError, match="background task broke"):
        m.run(trio.sleep, 5)
    with pytest.raises(BridgeClosed, match="background failure"):
        m.run(trio.sleep, 0)
    m.teardown()  # already reported: teardown ends quietly
    assert m._loop.dead


def test_background_crash_while_the_job_finishes_without_checkpoint_is_reported_by_that_run() -> None:
    m = Plain()
    crashed = trio.Event()

    async def crash_now() -> None:
        crashed.set()
        raise ValueError("background task broke")

    async def wait_then_return() -> str:
        await crashed.wait()  # woken by the crashing task; the nursery is cancelled by now
        return "done"  # no checkpoint after the crash, so the job itself succeeds

    m.nursery.start_soon(crash_now)
    with pytest.raises(ValueError, match="background task broke"):
        m.run(wait_then_return)
    _ends(m)


def test_background_crash_and_job_error_are_both_reported() -> None:
    m = Plain()
    m.nursery.start_soon(_crash_after, 0)

    async def fails_on_cancel() -> None:
        try:
            await trio.sleep(10)
        finally:
            raise KeyError("job cleanup failed")

    with pytest.raises(BaseExceptionGroup) as info:
        m.run(fails_on_cancel)
    kinds = sorted(type(e).__name__ for e in info.value.exceptions)
    assert kinds == ["KeyError", "ValueError"]
    _ends(m)


def test_background_crash_surfaces_from_teardown() -> None:
    m = Plain()

    async def crash_now() -> None:
        raise ValueError("background task broke")

    m.nursery.start_soon(crash_now)  # spawned but not run yet: the run is frozen
    with pytest.raises(ValueError, match="background task broke"):
        m.teardown()  # the task first runs (and crashes) while the loop winds down
    assert m._loop.dead


class CrashesInBackground(TrioStateMachine):
    @rule()
    def spawn_crash(self) -> None:
        self.nursery.start_soon(_crash_after, 1)

    @rule()
    def wait(self) -> None:
        self.run(trio.sleep, 2)


def test_background_crash_fails_the_hypothesis_run() -> None:
    with pytest.raises(ValueError, match="background task broke") as info:
        run_state_machine_as_test(CrashesInBackground, settings=FAST)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "state.spawn_crash()" in notes


class _Passes(trio.abc.Instrument):
    def __init__(self) -> None:
        self.passes = 0

    def before_io_wait(self, timeout: float) -> None:
        self.passes += 1


def test_the_clock_jumps_in_the_pass_that_finds_every_task_blocked() -> None:
    """Ten sleeps, each a jump: MockClock(autojump_threshold=0) spends an empty scheduler pass
    before each jump (twenty passes); the bridge's clock jumps in the pass itself."""
    m = Plain()
    passes = _Passes()

    async def ten_sleeps() -> None:
        trio.lowlevel.add_instrument(passes)
        for _ in range(10):
            await trio.sleep(1)
        trio.lowlevel.remove_instrument(passes)

    try:
        m.run(ten_sleeps)
        assert m.clock.current_time() == 10
        assert passes.passes == 10
    finally:
        _ends(m)


def test_tasks_waiting_for_idle_run_before_the_clock_jumps() -> None:
    """``wait_all_tasks_blocked`` keeps MockClock's priority: its waiters wake first, at the
    time everything blocked, and the clock jumps only once they block too."""
    m = Plain()

    async def job() -> list[tuple[str, float]]:
        seen = []

        async def idle_waiter() -> None:
            await trio.testing.wait_all_tasks_blocked()
            seen.append(("idle", trio.current_time()))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(idle_waiter)
            await trio.sleep(5)
            seen.append(("slept", trio.current_time()))
        return seen

    try:
        assert m.run(job) == [("idle", 0.0), ("slept", 5.0)]
    finally:
        _ends(m)


# ----- deadlocks and timeouts ------------------------------------------------------------


def test_deadlocked_job_raises_job_timeout_at_the_virtual_deadline() -> None:
    m = Plain()
    try:
        never = trio.Event()
        with pytest.raises(JobTimeout, match=r"test_deadlocked_job.*Event.wait.*600 virtual seconds"):
            m.run(never.wait)
        assert m.clock.current_time() == 600
        # The machine keeps working after a timeout.
        assert m.run(_add, 1, 2) == 3
    finally:
        _ends(m)


def test_per_job_timeout_overrides_the_default() -> None:
    m = Plain()
    try:
        with pytest.raises(JobTimeout, match="2 virtual seconds"):
            m.run(trio.sleep_forever, timeout=2)
        assert m.clock.current_time() == 2
        assert m.run(_add, 0, 0, timeout=5) == 0  # finishes in 1 s, within the bound
    finally:
        _ends(m)


def test_a_job_failing_while_timed_out_reports_its_error_and_the_machine_goes_on() -> None:
    m = Plain()

    async def cleanup_fails() -> None:
        try:
            await trio.sleep_forever()
        finally:
            raise KeyError("cleanup failed")

    try:
        with pytest.raises(KeyError, match="cleanup failed") as info:
            m.run(cleanup_fails, timeout=4)
        assert "4 virtual-second deadline" in "\n".join(info.value.__notes__)
        assert m.run(_add, 1, 1) == 2  # a fresh job scope: not cancelled
        with pytest.raises(JobTimeout, match="3 virtual seconds"):
            m.run(trio.sleep_forever, timeout=3)
        assert m.clock.current_time() == 4 + 1 + 3
    finally:
        _ends(m)


def test_job_timeout_is_a_class_attribute_subclasses_can_tune() -> None:
    class Impatient(Plain):
        job_timeout = 3.0

    m = Impatient()
    try:
        with pytest.raises(JobTimeout, match="3 virtual seconds"):
            m.run(trio.sleep, 10)
    finally:
        _ends(m)


# ----- lifecycle -------------------------------------------------------------------------


class Lifecycle(TrioStateMachine):
    events: list[str] = []

    async def trio_setup(self) -> None:
        Lifecycle.events.append("setup")

        async def server() -> None:
            try:
                await trio.sleep_forever()
            finally:
                Lifecycle.events.append("server cancelled")

        self.nursery.start_soon(server)

    async def trio_teardown(self) -> None:
        Lifecycle.events.append("trio_teardown")

    @rule()
    def step(self) -> None:
        self.run(trio.sleep, 1)


def test_teardown_runs_the_hook_cancels_the_nursery_and_ends_the_greenlet() -> None:
    Lifecycle.events = []
    m = Lifecycle()
    m.step()
    m.teardown()
    assert Lifecycle.events == ["setup", "trio_teardown", "server cancelled"]
    assert m._loop.dead
    assert m.nursery is None
    m.teardown()  # idempotent


def test_run_and_start_soon_after_teardown_raise_bridge_closed() -> None:
    m = Plain()
    m.teardown()
    with pytest.raises(BridgeClosed, match="trio loop has ended"):
        m.run(trio.sleep, 0)
    with pytest.raises(BridgeClosed, match="trio loop has ended"):
        m.start_soon(trio.sleep, 0)


class BrokenInit(TrioStateMachine):
    instances: list[TrioStateMachine] = []

    def __init__(self) -> None:
        super().__init__()
        BrokenInit.instances.append(self)
        raise RuntimeError("subclass __init__ failed")

    @rule()
    def step(self) -> None:
        pass


def test_failing_subclass_init_still_ends_the_loop() -> None:
    BrokenInit.instances = []
    with pytest.raises(RuntimeError, match="subclass __init__ failed"):
        run_state_machine_as_test(BrokenInit, settings=FAST)
    assert BrokenInit.instances
    assert all(m._loop.dead for m in BrokenInit.instances)


class BrokenSetup(TrioStateMachine):
    async def trio_setup(self) -> None:
        await trio.sleep(1)
        raise OSError("could not bind")

    @rule()
    def step(self) -> None:
        pass


def test_failing_trio_setup_raises_from_init_and_ends_the_loop() -> None:
    # Compare with the threads alive before: idle trio worker threads left by earlier tests
    # in the same process (trio's thread cache) are not this machine's doing.
    before = set(threading.enumerate())
    with pytest.raises(OSError, match="could not bind"):
        BrokenSetup()
    gc.collect()
    assert set(threading.enumerate()) <= before


class FailsMidway(TrioStateMachine):
    instances: list[TrioStateMachine] = []

    def __init__(self) -> None:
        super().__init__()
        FailsMidway.instances.append(self)
        self.count = 0

    @rule()
    def step(self) -> None:
        self.count += 1
        self.run(trio.sleep, 1)
        assert self.count < 4, "rule failed midway"


def test_a_failing_rule_still_gets_a_clean_teardown() -> None:
    FailsMidway.instances = []
    with pytest.raises(AssertionError, match="rule failed midway"):
        run_state_machine_as_test(FailsMidway, settings=FAST)
    assert all(m._loop.dead for m in FailsMidway.instances)


def _live_greenlets() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, greenlet.greenlet) and not o.dead)


class Leaky(TrioStateMachine):
    async def trio_setup(self) -> None:
        send, receive = trio.open_memory_channel(0)
        self.send = send

        async def consumer() -> None:
            async for _ in receive:
                pass

        self.nursery.start_soon(consumer)

    @rule(n=st.integers(0, 3))
    def push(self, n: int) -> None:
        for _ in range(n):
            self.run(self.send.send, n)


def test_200_examples_do_not_accumulate_greenlets_threads_or_fds() -> None:
    run_state_machine_as_test(Leaky, settings=settings(FAST, max_examples=5))  # warm-up
    fds = len(os.listdir("/proc/self/fd"))
    threads = threading.active_count()
    greenlets = _live_greenlets()
    run_state_machine_as_test(Leaky, settings=settings(FAST, max_examples=200, stateful_step_count=5))
    assert len(os.listdir("/proc/self/fd")) == fds
    assert threading.active_count() == threads
    assert _live_greenlets() == greenlets
