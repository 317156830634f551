"""The fairness invariant: an honest session's request latency stays bounded under attack.

`LatencyProbe` is one honest session (the reference `Client`) that keeps making a small
request -- echo one short message, then end -- and records how long each took, open to
``end``. Beside never-reading sessions, partial-message floods and the rest, PROTOCOL.md §6
promises that misbehaving sessions slow only themselves; `check` turns that into a
verdict against the documented bound (`bounds.honest_latency`). In the sim the clock is
virtual, so latencies are exact and replay bit for bit; on real sockets (the soak) the same
probe reports a distribution judged against a generous bound.
"""

from __future__ import annotations

import json
import random
import statistics
from dataclasses import dataclass, field
from typing import Callable

import trio

from statemodel.model import InvariantViolation
from statemodel.stream.client import Client
from statemodel.stream.config import Config
from statemodel.stream.errors import EndOfStream, SessionClosed, StreamError, StreamReset

REQUEST = json.dumps({"op": "batch", "commands": [{"op": "echo", "data": "fair?"}, {"op": "end"}]}).encode()


@dataclass
class LatencyProbe:
    dial: object  # async () -> trio.abc.Stream
    config: Config
    rng: random.Random
    every: float = 0.5  # seconds between the end of one request and the next
    #: The server's incarnation (restarts count): a request that saw a restart waits for a
    #: reconnect and a new session, not for fairness, so it is not judged.
    epoch: Callable[[], int] = lambda: 0
    latencies: list[float] = field(default_factory=list)  # completed requests, in order
    started_at: float | None = None  # the request in flight, if any
    started_epoch: int = 0
    excused: bool = False  # the request in flight is not judged (see `promise_holds`)
    outside: bool = False
    failures: list[str] = field(default_factory=list)  # requests that ended otherwise (reset: restart)

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        client = Client(self.dial, self.config, self.rng)
        async with client.run():
            task_status.started()
            while True:
                self.started_epoch = self.epoch()
                self.started_at = trio.current_time()
                self.excused = self.outside
                try:
                    stream = await client.open(REQUEST)
                    async for _chunk in stream:
                        pass
                    if self.started_epoch == self.epoch() and not self.excused:
                        self.latencies.append(trio.current_time() - self.started_at)
                except (StreamReset, StreamError, EndOfStream) as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                except SessionClosed as exc:
                    self.failures.append(f"session closed: {exc}")
                    self.started_at = None
                    return
                self.started_at = None
                await trio.sleep(self.every)

    def pending(self, now: float) -> float:
        """How long the request in flight has waited (0 if none, or it is not judged)."""
        if self.started_at is None or self.started_epoch != self.epoch() or self.excused:
            return 0.0
        return now - self.started_at

    def promise_holds(self, holds: bool) -> None:
        """Whether the conditions of the promise hold now (no more stalled sessions than it
        covers); a request that lived through a moment when they did not is not judged."""
        self.outside = not holds
        if self.outside:
            self.excused = True

    def check(self, now: float, bound: float, where: str = "honest probe session") -> None:
        """Raise if a request took, or has been waiting, longer than ``bound``."""
        pending = self.pending(now)
        late = next((x for x in self.latencies if x > bound), None)
        if pending > bound or late is not None:
            actual = (f"a request took {late:.3f} s" if late is not None
                      else f"a request open for {pending:.3f} s and not finished")
            raise InvariantViolation(
                "an honest session's request latency stays within its bound while others misbehave", where,
                f"each small request done within {bound:g} s", actual)

    def summary(self) -> dict[str, float]:
        xs = sorted(self.latencies)
        if not xs:
            return {"requests": 0}
        q = statistics.quantiles(xs, n=100, method="inclusive") if len(xs) > 1 else [xs[0]] * 99
        return {"requests": len(xs), "p50": round(q[49], 4), "p90": round(q[89], 4), "p99": round(q[98], 4),
                "max": round(xs[-1], 4)}
