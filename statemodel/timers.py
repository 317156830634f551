"""Timed waits that end without a cancellation: ``sleep_until``, and waits on a parking lot or
an event that also end at a deadline.

trio ends a timed wait (``trio.sleep``, ``move_on_at`` around a wait) by cancelling a
``CancelScope`` at the deadline: it recalculates the scope's cancel status, raises
``Cancelled`` into the task and unwinds it through the scope's ``__exit__``. That is ~34 µs of
CPU per wake-up against ~8 for the wake-up itself. The simulated world's waits mostly end by
their deadline (a packet's delivery time, a link timer, a step's end, an offline poll): 22
cancellations per StreamMachine step before this module, 6 after.

An :class:`Alarm` puts itself in trio's own deadline heap (the run's ``Deadlines``) in place
of a cancel scope, and when trio expires it, reschedules the waiting task right there, where
the scope's cancellation would have rescheduled it. So the woken task runs in the same
scheduler pass, in the same place in the run queue; virtual time, autojump and the next
deadline are trio's, and a cancellation from outside aborts the wait as before.

``fifo_ties`` (the machine's ``VirtualClock`` calls it as a run starts) makes deadlines due at
the same instant expire in the order they were set, where trio orders them by memory address.

This reads trio internals (``GLOBAL_RUN_CONTEXT.runner.deadlines``, ``Event._tasks``,
``ParkingLot._parked``). Where they are not as expected (another trio version), ``FAST`` is
False and every function here is the cancel-scope form it replaces (so is it in a guest
run, whose host loop hears of a new deadline only from a scope); tests/test_timers.py
runs the same schedules both ways and compares what each task saw and when.
"""

from __future__ import annotations

import itertools
import math
from heapq import heappush

import trio
from trio.lowlevel import Abort, checkpoint, current_task, reschedule, wait_task_rescheduled

try:
    from trio._core._parking_lot import ParkingLot as _ParkingLot
    from trio._core._run import GLOBAL_RUN_CONTEXT as _RUN_CONTEXT
    from trio._core._run import Deadlines as _Deadlines

    FAST = (
        all(callable(getattr(_Deadlines, name, None)) for name in ("add", "remove", "expire", "next_deadline"))
        and isinstance(getattr(trio.Event(), "_tasks", None), set)
        and hasattr(_ParkingLot(), "_parked")
    )
except ImportError:  # pragma: no cover - another trio layout
    FAST = False

__all__ = ["FAST", "Alarm", "fifo_ties", "park_until", "sleep", "sleep_on", "sleep_until", "wait_event_until", "wait_until"]

_inf = math.inf
_set_order = itertools.count()  # only ever compared between deadlines of one run: any start will do


if FAST:

    class FifoDeadlines(_Deadlines):
        """trio's deadline heap, with deadlines due at the same instant expiring in the order
        they were set. trio breaks such a tie by ``id()`` of the scope: by memory address, so
        which of a wait and its enclosing scope (say) expired first -- a normal wake-up or a
        ``Cancelled`` -- depended on where the allocator had put them, and a re-run of the
        same example later in a long process could take the other branch. On a virtual
        clock ties are common (many timers are set a round number of virtual ms ahead)."""

        __slots__ = ()

        def add(self, deadline: float, cancel_scope) -> None:
            heappush(self._heap, (deadline, next(_set_order), cancel_scope))
            self._active += 1


def fifo_ties(runner) -> None:
    """Give ``runner`` (a run just starting) a deadline heap whose ties expire in the order
    they were set (``FifoDeadlines``); does nothing where trio's internals differ."""
    if not FAST or type(runner.deadlines) is not _Deadlines:
        return
    fifo = FifoDeadlines()
    fifo._heap, fifo._active = list(runner.deadlines._heap), runner.deadlines._active
    runner.deadlines = fifo


class Alarm:
    """A deadline that wakes the one task waiting on it: a cancel scope's deadline, minus the
    scope. ``deadline`` may be moved at any time (as ``CancelScope.deadline``); it counts only
    while a task waits (``sleep_until``, ``park_until``, ``wait_event_until``), once per wait."""

    __slots__ = ("_deadline", "_registered_deadline", "_deadlines", "_task", "_unwait", "_scope")

    def __init__(self, deadline: float = _inf) -> None:
        self._deadline = deadline
        self._registered_deadline = _inf  # what trio's heap holds for us (trio reads it)
        self._deadlines = None
        self._task = None
        self._unwait = None  # takes the waiting task off what it waits on; False: it was not on it
        self._scope: trio.CancelScope | None = None  # the fallback's scope while one waits

    @property
    def deadline(self) -> float:
        return self._deadline

    @deadline.setter
    def deadline(self, value: float) -> None:
        self._deadline = value
        if self._task is not None:
            self._register(value)
        elif self._scope is not None:
            self._scope.deadline = value

    def _register(self, new: float) -> None:
        old = self._registered_deadline
        if old != new:
            self._registered_deadline = new
            if old != _inf:
                self._deadlines.remove(old, self)
            if new != _inf:
                self._deadlines.add(new, self)

    def _cancel(self, *_reason: object) -> None:
        """trio's ``Deadlines.expire``: our deadline passed. Wake the task if it still waits
        (on the real clock, what it waited on may have woken it since)."""
        task = self._task
        if self._disarm() and task is not None:
            reschedule(task)

    cancel = _cancel  # what older trio versions call

    def _disarm(self) -> bool:
        self._register(_inf)
        self._task = None
        unwait, self._unwait = self._unwait, None
        return unwait is None or unwait()

    def _abort(self, _raise_cancel: object) -> Abort:
        self._disarm()
        return Abort.SUCCEEDED

    async def _wait(self, unwait) -> None:
        """Block until the deadline passes or the owner of ``unwait`` wakes the task;
        ``unwait()`` takes the task off that owner (False: it already had)."""
        runner = _RUN_CONTEXT.runner
        self._task = _RUN_CONTEXT.task
        self._deadlines = runner.deadlines
        self._unwait = unwait
        self._register(self._deadline)
        await wait_task_rescheduled(self._abort)
        if self._task is not None:  # woken by the owner, still armed
            self._register(_inf)
            self._task = None
            self._unwait = None


def _fast() -> bool:
    """Use the fast path: trio's internals are as expected, and this is no guest run (a guest
    run's host must hear of an earlier deadline, which only cancel scopes tell it)."""
    return FAST and not _RUN_CONTEXT.runner.is_guest


def _waiting() -> bool:
    return True


async def sleep_until(deadline: float) -> None:
    """``trio.sleep_until`` (a deadline in the past is one checkpoint)."""
    if not _fast():
        await trio.sleep_until(deadline)
    elif deadline <= _RUN_CONTEXT.runner.clock.current_time():
        await checkpoint()  # as a scope entered past its deadline: one schedule point
    else:
        await Alarm(deadline)._wait(_waiting)


async def sleep(seconds: float) -> None:
    """``trio.sleep``."""
    if seconds <= 0 or not _fast():
        await trio.sleep(seconds)
    else:
        await sleep_until(_RUN_CONTEXT.runner.clock.current_time() + seconds)


async def _in_scope(alarm: Alarm, wait) -> trio.CancelScope:
    """The cancel-scope form: ``wait()`` in a scope with the alarm's deadline, which the alarm
    moves while it waits."""
    scope = alarm._scope = trio.CancelScope(deadline=alarm._deadline)
    try:
        with scope:
            await wait()
    finally:
        alarm._scope = None
    return scope


async def sleep_on(alarm: Alarm) -> None:
    """``with CancelScope(deadline=alarm.deadline): await trio.sleep_forever()``, the deadline
    movable through ``alarm`` meanwhile."""
    if not _fast():
        await _in_scope(alarm, trio.sleep_forever)
    elif alarm._deadline <= _RUN_CONTEXT.runner.clock.current_time():
        await checkpoint()
    else:
        await alarm._wait(_waiting)


async def park_until(lot: trio.lowlevel.ParkingLot, alarm: Alarm) -> bool:
    """``with CancelScope(deadline=alarm.deadline): await lot.park()``, the deadline movable
    through ``alarm`` meanwhile. True when unparked, False when the deadline came first."""
    if not _fast():
        return not (await _in_scope(alarm, lot.park)).cancelled_caught
    if alarm._deadline <= _RUN_CONTEXT.runner.clock.current_time():
        await checkpoint()
        return False
    task = _RUN_CONTEXT.task
    parked = lot._parked
    parked[task] = None  # as ParkingLot.park
    task.custom_sleep_data = lot
    fired = []

    def unwait() -> bool:
        if task not in parked:
            return False
        del parked[task]
        fired.append(True)
        return True

    await alarm._wait(unwait)
    return not fired


async def wait_event_until(event: trio.Event, deadline: float) -> bool:
    """``with move_on_at(deadline): await event.wait()``: True when the event fired."""
    if not _fast():
        with trio.move_on_at(deadline) as scope:
            await event.wait()
        return not scope.cancelled_caught
    if event._flag:
        await checkpoint()
        return True
    if deadline <= _RUN_CONTEXT.runner.clock.current_time():
        await checkpoint()
        return False
    task = _RUN_CONTEXT.task
    tasks = event._tasks
    tasks.add(task)  # as Event.wait
    fired = []

    def unwait() -> bool:
        if task not in tasks:
            return False
        tasks.remove(task)
        fired.append(True)
        return True

    await Alarm(deadline)._wait(unwait)
    return not fired


async def wait_until(done, deadline: float, poll: float) -> bool:
    """Return once ``done()`` holds (True) or at ``deadline`` (False); ``done`` reads state
    that moves without telling anyone (a client's connection, say).

    On a clock with ``watchers`` (the machine's ``VirtualClock``), ``done()`` is read each
    time the world is about to move virtual time on, and the task wakes at the first such
    moment where it holds: no wake-ups in between. Elsewhere (the real clock), it is read
    every ``poll`` seconds."""
    clock = _RUN_CONTEXT.runner.clock
    watchers = getattr(clock, "watchers", None)
    while not done():
        if clock.current_time() >= deadline:
            return False
        if watchers is None or not _fast():
            with trio.move_on_at(deadline):
                while not done():
                    await sleep(poll)
            continue
        task = _RUN_CONTEXT.task
        entry = [done, lambda: reschedule(task)]
        watchers.append(entry)

        def unwait() -> bool:
            if entry not in watchers:
                return False
            watchers.remove(entry)
            return True

        await Alarm(deadline)._wait(unwait)
    return True
