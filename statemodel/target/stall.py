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

from typing import Callable

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
    after it was set (at most ``MAX_CREDIT``)."""

    def __init__(self, start: float, bound: float, stalled: Callable[[], float]) -> None:
        self.start, self.bound, self.stalled = start, bound, stalled
        self.mark = stalled()

    def credit(self) -> float:
        return min(max(self.stalled() - self.mark, 0.0), MAX_CREDIT)

    def at(self) -> float:
        """The deadline now: read it again after every wait."""
        return self.start + self.bound + self.credit()
