"""Time the host kept this thread off the CPU: a bound on the real clock does not count it.

A real-time verdict's bound (recovery after heal, a rogue peer waiting to be fenced) is set
for a host that runs us when we are ready: timers, handshakes, a few round trips. On a
loaded host (other jobs, sibling fuzz workers) the thread also waits in the kernel's run
queue while its timers and sockets are ready, and a 2 MiB replay that takes 0.5 s of CPU
takes seconds of wall time: a fixed wall-clock bound then fails a correct server (a
400-example tcp run at load 7: "no loss at quiescence", "session context preserved", both
on data still arriving). Linux counts that wait per thread (``/proc/thread-self/schedstat``,
second field: run delay, ns); the whole machine (server, proxy, clients) runs in one thread,
so a deadline moves out by what accrued since it was set (:class:`Deadline`).

What the host cannot show (not Linux, schedstats off) reads as 0: the plain wall-clock bound.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable

import trio

SCHEDSTAT = "/proc/thread-self/schedstat"
# At most this much starvation is credited to one wait: a wait still ends (no hangs), well
# inside the bridge's job bound (``real_job_timeout``, 120 s).
MAX_CREDIT = 60.0


def host_stall() -> float:
    """Seconds this thread has spent runnable but not running, since it started (0 if unknown)."""
    try:
        with open(SCHEDSTAT, "rb") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


class Deadline:
    """``bound`` seconds after ``start``, moved out by the starvation ``stalled()`` reports
    after it was set (at most ``MAX_CREDIT``). ``stalled`` None: a deadline that never moves."""

    def __init__(self, start: float, bound: float, stalled: Callable[[], float] | None) -> None:
        self.start, self.bound, self.stalled = start, bound, stalled
        self.mark = stalled() if stalled is not None else 0.0

    def credit(self) -> float:
        if self.stalled is None:
            return 0.0
        return min(max(self.stalled() - self.mark, 0.0), MAX_CREDIT)

    def at(self) -> float:
        """The deadline now: read it again after every wait."""
        return self.start + self.bound + self.credit()


@asynccontextmanager
async def move_on_after(seconds: float, stalled: Callable[[], float] | None) -> AsyncIterator[trio.CancelScope]:
    """``trio.move_on_after(seconds)`` whose deadline moves out by the starvation ``stalled()``
    reports meanwhile (a rogue peer waiting to be fenced: on a starved host the server's close
    arrives late, not never). A scope's own deadline cannot be re-read when it comes, so a
    watcher task cancels the body once the credited deadline really passed. ``stalled`` None
    (the sim: virtual time has no starvation): the plain scope and no extra task, since one
    more task reshuffles trio's seeded schedule and with it every pinned trace."""
    if stalled is None:
        with trio.move_on_after(seconds) as scope:
            yield scope
        return
    deadline = Deadline(trio.current_time(), seconds, stalled)

    async def expire(scope: trio.CancelScope) -> None:
        while trio.current_time() < (at := deadline.at()):
            await trio.sleep_until(at)
        scope.cancel()

    try:
        async with trio.open_nursery() as nursery:
            try:
                with trio.CancelScope() as scope:
                    nursery.start_soon(expire, scope)
                    yield scope
            finally:  # after the scope took its own cancellation: not shadowed by the nursery's
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:  # the body ran inside a nursery: report its one error as is
        if len(group.exceptions) == 1 and isinstance(group.exceptions[0], Exception):
            raise group.exceptions[0] from None
        raise
