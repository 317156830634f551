"""Trio bridge: a Hypothesis ``RuleBasedStateMachine`` whose rules can await trio code.

Each machine instance owns one ``trio.run`` on a :class:`VirtualClock` (virtual time that
jumps to the next deadline whenever every task is blocked), running inside its own greenlet. Between rules the greenlet is parked in the middle of a trio task
step, so the whole run is frozen: no task runs and virtual time does not move. A rule calls
``self.run(async_fn, *args)``, which switches into the loop, awaits the job inside the
machine's nursery context, and switches back with the result: two greenlet switches per call,
no thread, no ``trio.run`` per step.

A machine class with ``real_time = True`` (real sockets: the tcp and netns transports) runs on
trio's real clock instead, since autojump would skip the waits for the kernel; then
``self.clock`` is None, real time passes between rules too (sockets buffer in the kernel while
the loop is parked), and job bounds are real seconds (``real_job_timeout`` by default).

Why this shape: a trio loop in a helper thread lets autojump skip time between steps and is
not deterministic; hypothesis-trio no longer imports. Only Hypothesis' public stateful API is
used, so ``Machine.TestCase``, ``run_state_machine_as_test``, ``@seed``,
``@reproduce_failure`` and the example database work unchanged. Importing Hypothesis makes
trio's scheduler RNG a registered random, which Hypothesis seeds at the start of every test
case, so same seed => same scheduling. Outside a test case (a printed program run as plain
Python: reproducers, ``statemodel replay``) the machine seeds the registered randoms the same
way for its lifetime, so a replay schedules exactly as the run it replays.

Background tasks go in ``self.nursery``. If one crashes, trio cancels the nursery; the driver
notices and the failure is raised from the current/next ``run()`` or from ``teardown()``.
Every job runs under a virtual-time deadline (``job_timeout``), so a job that deadlocks ends in
:class:`JobTimeout` after autojump reaches the deadline instead of hanging.
"""

from __future__ import annotations

import contextlib
import functools
import math
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import greenlet
import trio
from hypothesis.control import currently_in_test_context
from hypothesis.internal.entropy import deterministic_PRNG
from hypothesis.stateful import RuleBasedStateMachine

from statemodel import literals, timers
from statemodel.pareto import cached_sort_keys

# trio keeps "which run is active in this thread" in a thread-local, and greenlets share the
# thread. Between jobs that state is left in place (so ``self.nursery.start_soon`` works from
# rule code), and each switch into a loop reinstalls that loop's own state, so several
# machines can live in one thread: each job runs against its own run, clock and hooks.
from trio._core._run_context import GLOBAL_RUN_CONTEXT as _RUN_CONTEXT

__all__ = ["BridgeClosed", "JobTimeout", "TrioStateMachine", "VirtualClock"]

T = TypeVar("T")

# Replies from the loop greenlet to the caller.
_OK, _ERR, _TIMEOUT, _ENDED = range(4)

_local = threading.local()

#: Factories of trio instruments every machine's run gets (``instrumented``): for tools that
#: watch the scheduler (``statemodel.bench.purity``); empty in normal runs.
_instrument_factories: list[Callable[[], trio.abc.Instrument]] = []


@contextlib.contextmanager
def instrumented(factory: Callable[[], trio.abc.Instrument]):
    """Give every machine started inside the block a fresh ``factory()`` instrument."""
    _instrument_factories.append(factory)
    try:
        yield
    finally:
        _instrument_factories.remove(factory)


class VirtualClock(trio.abc.Clock):
    """Virtual time that stands still while any task can run and jumps to the next deadline
    as soon as none can: ``MockClock(autojump_threshold=0)`` semantics (tasks blocked in
    ``wait_all_tasks_blocked`` still go first), one scheduler pass cheaper per jump.

    MockClock notices "everyone is blocked" only after an empty pass and jumps at its end;
    trio asks this clock how long to sleep exactly when no task is runnable, so it jumps
    right there and the woken tasks run in the next pass. A StreamMachine spent about one
    pass in six on those empty passes. Reading it is an attribute read, not a real-clock read.
    """

    def __init__(self) -> None:
        self._now = 0.0
        #: ``[done, wake]`` pairs (``timers.wait_until``): whenever the world is about to
        #: move time on, ``wake()`` is called for each whose ``done()`` holds (and removed).
        self.watchers: list[list] = []

    def __repr__(self) -> str:
        return f"<VirtualClock, time={self._now:.7f}>"

    def _woke_watchers(self) -> bool:
        """Wake the watchers whose condition holds now; True if any woke. A condition that
        raises wakes its task too, which reads it again itself (and raises there)."""
        woke = False
        for entry in list(self.watchers):
            try:
                ready = entry[0]()
            except Exception:  # noqa: BLE001 - re-raised in the waiting task
                ready = True
            if ready:
                self.watchers.remove(entry)
                entry[1]()
                woke = True
        return woke

    def start_clock(self) -> None:
        # trio calls this as a run starts, before any task: same program => same order of
        # expiry for deadlines due at the same virtual instant (timers.FifoDeadlines).
        runner = getattr(_RUN_CONTEXT, "runner", None)
        if runner is not None:
            timers.fifo_ties(runner)

    def current_time(self) -> float:
        return self._now

    def deadline_to_sleep_time(self, deadline: float) -> float:
        if deadline <= self._now or (self.watchers and self._woke_watchers()):
            return 0.0  # a deadline is due, or a watcher woke: no jump
        runner = getattr(_RUN_CONTEXT, "runner", None)
        if deadline == math.inf or (runner is not None and runner.waiting_for_idle):
            return 999999999.0  # nothing to jump to, or idle waiters first (trio caps the wait)
        self._now = deadline
        return 0.0

    def jump(self, seconds: float) -> None:
        """Advance by hand (as ``MockClock.jump``)."""
        if seconds < 0:
            raise ValueError("time can't go backwards")
        self._now += seconds


class JobTimeout(Exception):
    """A job did not finish within its virtual-time bound (usually: it deadlocked)."""


class BridgeClosed(RuntimeError):
    """``run()`` was called after the machine's trio loop had ended."""


def _unwrap(exc: BaseException) -> BaseException:
    """A group holding exactly one exception is reported as that exception (readability)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        inner = exc.exceptions[0]
        inner.add_note(f"(raised in a background task of the machine's nursery; unwrapped from {type(exc).__name__})")
        exc = inner
    return exc


class _BridgeMeta(type(RuleBasedStateMachine)):  # type: ignore[misc]
    """Ends the trio loop when a subclass ``__init__`` raises after ours started it.

    Hypothesis calls ``teardown()`` only for machines that were constructed, so without this
    a failing subclass ``__init__`` would leave a parked greenlet (and its fds) behind.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        stack = _local.__dict__.setdefault("constructing", [])
        mark = len(stack)
        try:
            return super().__call__(*args, **kwargs)
        except BaseException as exc:
            for machine in stack[mark:]:
                machine._abandon(exc)
            raise
        finally:
            del stack[mark:]


class TrioStateMachine(RuleBasedStateMachine, metaclass=_BridgeMeta):
    """A ``RuleBasedStateMachine`` with a frozen-between-rules trio run.

    Subclasses override ``async def trio_setup(self)`` / ``async def trio_teardown(self)``
    and call ``self.run(async_fn, *args)`` from rules, invariants and initialize rules.
    Subclasses that define ``teardown`` must call ``super().teardown()``.
    """

    #: Virtual seconds a single job may take before :class:`JobTimeout`.
    job_timeout: float = 600.0
    #: Run on the real clock instead of the virtual one: for machines doing real I/O (sockets),
    #: where autojump would skip the waits for the kernel. ``self.clock`` is None then, and
    #: the default job bound is ``real_job_timeout`` real seconds (a hang must end soon).
    real_time: bool = False
    real_job_timeout: float = 120.0

    def __init__(self) -> None:
        super().__init__()
        self.nursery: trio.Nursery | None = None
        self.clock = None if self.real_time else VirtualClock()
        self._default_timeout = min(self.job_timeout, self.real_job_timeout) if self.real_time else self.job_timeout
        self._timed_out_at = 0.0  # trio time when the last job overran (for the message)
        self._ended_error: BaseException | None = None  # background failure, once the loop died
        self._error_reported = False
        self._job_deadline = math.inf  # the running job's virtual deadline (inf between jobs)
        self._watch_deadline = math.inf  # when the watchdog wakes next
        self._job_scope: trio.CancelScope | None = None
        self._watch_scope: trio.CancelScope | None = None
        # trio's scheduler shuffles each batch of runnable tasks with its registered random, and
        # trio-websocket draws ping payloads from `random`: outside a Hypothesis test case nothing
        # seeds them, so seed them as Hypothesis does (seed 0) until the loop ends.
        self._seeded = contextlib.ExitStack()
        if not currently_in_test_context():
            self._seeded.enter_context(deterministic_PRNG())
        self._loop = greenlet.greenlet(self._loop_main)
        _local.__dict__.setdefault("constructing", []).append(self)
        _local.live_loops = getattr(_local, "live_loops", 0) + 1
        # The first switch starts trio.run and runs trio_setup as the first job.
        self._reply(self._loop.switch((self.trio_setup, (), self._default_timeout)), "trio_setup")

    @classmethod
    @functools.lru_cache
    def _to_test_case(cls):
        """Hypothesis' ``TestCase`` for this machine, run with the local-literal pool empty
        (``statemodel.literals``): what pytest generates must not depend on which modules the
        session imported before it. The pareto front's sort keys are memoised
        (``statemodel.pareto``): under a profile with a database they cost ~12% of a run."""
        case = super()._to_test_case()
        run = case.runTest

        def runTest(self) -> None:  # noqa: N802 - unittest's name
            with literals.held(), cached_sort_keys():  # the pareto memo: same examples, less CPU
                run(self)

        runTest.__dict__.update(run.__dict__)  # is_hypothesis_test, the machine class
        case.runTest = runTest
        return case

    # ----- overridable hooks -------------------------------------------------------------
    async def trio_setup(self) -> None:
        """Runs once inside the loop before the first rule (start servers etc. here)."""

    async def trio_teardown(self) -> None:
        """Runs inside the loop at teardown, before the nursery is cancelled."""

    # ----- the public bridge -------------------------------------------------------------
    def run(self, async_fn: Callable[..., Awaitable[T]], *args: Any, timeout: float | None = None) -> T:
        """Await ``async_fn(*args)`` inside the machine's trio run and return its result.

        Virtual time moves only during this call. ``timeout`` (virtual seconds) defaults to
        ``job_timeout``. Exceptions are re-raised with their original traceback; a crash of a
        background task is raised here as well.
        """
        loop = self._loop
        if loop.dead:
            self._raise_ended()
        current = greenlet.getcurrent()
        if current is loop:
            raise RuntimeError("self.run() was called from inside a trio job; await the function instead")
        if loop.parent is not current:
            loop.parent = current
        reply = loop.switch((async_fn, args, self._default_timeout if timeout is None else timeout))
        if reply[0] == _OK:
            return reply[1]
        return self._reply(reply, sys._getframe(1).f_code.co_name)

    def start_soon(self, async_fn: Callable[..., Awaitable[Any]], *args: Any, name: object = None) -> None:
        """Spawn a background task in ``self.nursery`` from plain (sync) rule code.

        ``self.nursery.start_soon`` works too while this machine is the last one that ran
        in the thread (the usual case); this method is right even when several machines
        share the thread. The task first runs during the next ``run()``.
        """
        ctx = _RUN_CONTEXT.__dict__
        if self._loop.dead or self.nursery is None:
            self._raise_ended()
        saved = dict(ctx)
        ctx["runner"], ctx["task"] = self._run_state
        try:
            self.nursery.start_soon(async_fn, *args, name=name)
        finally:
            ctx.clear()
            ctx.update(saved)

    def teardown(self) -> None:
        """Run ``trio_teardown``, cancel the nursery, finish ``trio.run`` and end the greenlet."""
        try:
            if not self._loop.dead:
                self.run(self.trio_teardown)
        finally:
            self._shutdown()

    # ----- caller side -------------------------------------------------------------------
    def _reply(self, reply: tuple[int, Any], caller: str) -> Any:
        kind, value = reply
        if kind == _OK:
            return value
        if kind == _ERR:
            try:
                raise value
            finally:
                value = None
        if kind == _TIMEOUT:
            fn, timeout = value
            name = getattr(fn, "__qualname__", repr(fn))
            kind = "real" if self.real_time else "virtual"
            raise JobTimeout(
                f"{caller}: job {name} did not finish within {timeout:g} {kind} seconds "
                f"({kind} time then {self._timed_out_at:g}); it is probably deadlocked"
            )
        self._raise_ended()

    def _raise_ended(self) -> None:
        error = self._ended_error
        if error is not None and not self._error_reported:
            self._error_reported = True
            try:
                raise error
            finally:
                error = None
        detail = f" after a background failure: {self._ended_error!r}" if self._ended_error else ""
        raise BridgeClosed(f"the machine's trio loop has ended{detail}; no more jobs can run")

    def _shutdown(self) -> None:
        """End the loop: cancel the nursery, let trio.run return, re-raise unreported errors."""
        loop = self._loop
        try:
            if not loop.dead:
                current = greenlet.getcurrent()
                if loop.parent is not current:
                    loop.parent = current
                loop.switch(None)  # None = stop; the greenlet returns when trio.run is done
        finally:
            self._seeded.close()  # the randoms' earlier states come back
        if self._ended_error is not None and not self._error_reported:
            self._raise_ended()

    def _abandon(self, exc: BaseException) -> None:
        """Shut down after a failed ``__init__``; extra failures become notes on ``exc``."""
        try:
            self._shutdown()
        except BaseException as extra:  # noqa: BLE001 - reported as a note, the original wins
            exc.add_note(f"while ending the trio loop of the half-built machine: {extra!r}")

    # ----- loop side (runs inside the greenlet) ------------------------------------------
    def _loop_main(self, first_job: tuple) -> tuple[int, Any]:
        # A parked sibling machine's run state is not ours; hide it while trio.run starts and
        # keep its signal wakeup fd out of the way (trio would warn about a collision).
        _RUN_CONTEXT.__dict__.clear()
        sibling = _local.live_loops > 1 and threading.current_thread() is threading.main_thread()
        saved_fd = signal.set_wakeup_fd(-1) if sibling else None
        try:
            trio.run(self._driver, first_job, clock=self.clock, strict_exception_groups=True,
                     instruments=[factory() for factory in _instrument_factories])
        except greenlet.GreenletExit:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            self._ended_error = _unwrap(exc)
        finally:
            _local.live_loops -= 1
            self.nursery = None
            if saved_fd is not None:
                signal.set_wakeup_fd(saved_fd)
        return (_ENDED, None)

    def _park(self, reply: tuple[int, Any]) -> tuple | None:
        """Hand ``reply`` to the caller and freeze until the next job (None = stop)."""
        ctx = _RUN_CONTEXT.__dict__
        runner, task = self._run_state = ctx["runner"], ctx["task"]
        hooks = sys.get_asyncgen_hooks()
        try:
            return self._loop.parent.switch(reply)
        finally:
            # Another machine may have run meanwhile: reinstall this run's thread state.
            if ctx.get("runner") is not runner or ctx.get("task") is not task:
                ctx.clear()
                ctx["runner"] = runner
                ctx["task"] = task
            if sys.get_asyncgen_hooks() != hooks:
                sys.set_asyncgen_hooks(*hooks)

    async def _driver(self, job: tuple | None) -> None:
        # Jobs share one cancel scope until one overruns: a CancelScope per job would cost
        # more than everything else in run() together. The watchdog task holds the only
        # deadline (the running job's), so autojump still jumps there when all is blocked.
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            await nursery.start(self._watchdog)
            while job is not None:
                overran = None  # (fn, timeout) of a job that has not given a normal reply
                with trio.CancelScope() as self._job_scope:
                    while job is not None:
                        fn, args, timeout = job
                        job = None
                        overran = (fn, timeout)
                        reply = await self._run_job(fn, args, timeout)
                        del fn, args
                        if reply is None:
                            break  # overran its deadline, or the nursery is dying
                        overran = None
                        job = self._park(reply)
                        reply = None
                        if self._job_scope.cancel_called:
                            break  # that job failed while being timed out: renew the scope
                if nursery.cancel_scope.cancel_called:
                    break  # a background task crashed: the nursery raises its group
                if overran is not None:
                    self._timed_out_at = trio.current_time()
                    job = self._park((_TIMEOUT, overran))
                    overran = None
            nursery.cancel_scope.cancel()

    async def _run_job(self, fn: Callable[..., Awaitable[Any]], args: tuple, timeout: float) -> tuple | None:
        """Await one job; None means "not a normal reply" (timed out, or the nursery is dying)."""
        deadline = trio.current_time() + timeout
        self._job_deadline = deadline
        if deadline < self._watch_deadline:
            self._watch_deadline = self._watch_scope.deadline = deadline
        try:
            value = await fn(*args)
        except BaseException as exc:
            if self.nursery.cancel_scope.cancel_called:
                raise  # a background task crashed: the nursery reports both
            if self._job_scope.cancel_called:
                if isinstance(exc, trio.Cancelled):
                    raise  # to the job scope: reported as JobTimeout
                exc.add_note(f"(raised while the job was cancelled at its {timeout:g} {'real' if self.real_time else 'virtual'}-second deadline)")
            return (_ERR, exc)
        finally:
            self._job_deadline = math.inf
        if self.nursery.cancel_scope.cancel_called or self._job_scope.cancel_called:
            return None  # returned, but the nursery is dying or the job overran (swallowed Cancelled)
        return (_OK, value)

    async def _watchdog(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sleep until the running job's deadline; cancel the job if it is still running then."""
        self._watch_deadline = math.inf
        started = False
        while True:
            with trio.CancelScope(deadline=self._watch_deadline) as self._watch_scope:
                if not started:
                    task_status.started()
                    started = True
                await trio.sleep_forever()
            if trio.current_time() >= self._job_deadline:
                self._job_scope.cancel()
                self._watch_deadline = math.inf  # the next job re-arms
            else:
                self._watch_deadline = self._job_deadline  # woke for an earlier job
