"""A toy resumable queue driven by a Hypothesis state machine, for testing the CLI alone.

It has the same shape as ``statemodel.machine`` (``MachineOptions`` + ``machine_class``)
and records through ``statemodel.record.Recorder``, so the fuzz runner, reports and replay
can be tested end to end before (and independently of) the real stream machine.
Mutant ``dup``: resume re-sends from one message too early (off-by-one at the replay
boundary), which duplicates a delivered message.
"""

from __future__ import annotations

import dataclasses

import hypothesis.strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from statemodel.record import Recorder

__all__ = ["MachineOptions", "machine_class", "ToyFault", "ToyMachine"]


@dataclasses.dataclass(frozen=True)
class MachineOptions:
    target: str = "reference"
    transport: str = "sim"
    mutants: frozenset = frozenset()
    record: bool = False


@dataclasses.dataclass(frozen=True)
class ToyFault:
    kind: str  # "drop" loses the link and what is in flight; "delay" only costs time


class ToyMachine(RuleBasedStateMachine):
    options = MachineOptions()

    def __init__(self):
        super().__init__()
        self.t = 0.0
        self.sent: list[int] = []
        self.inflight: list[int] = []
        self.delivered: list[int] = []
        self.up = True
        self.down_since: float | None = None
        self.recorder = Recorder() if self.options.record else None

    def _step(self, name, **args):
        self.t += 0.25
        if self.recorder:
            self.recorder.step(name, {k: repr(v) for k, v in args.items()})

    def _event(self, lane, kind, detail=None):
        if self.recorder:
            self.recorder.event(self.t, lane, kind, detail)

    def _snapshot(self):
        if self.recorder:
            self.recorder.state({"sent": len(self.sent), "delivered": len(self.delivered),
                                 "inflight": len(self.inflight), "link": "up" if self.up else "down"})

    @rule(msg=st.integers(0, 9))
    def send(self, msg):
        self._step("send", msg=msg)
        self.sent.append(msg)
        self._event("client:0", "frame", f"data seq={len(self.sent)} msg={msg}")
        if self.up:
            self.inflight.append(msg)
        self._snapshot()

    @precondition(lambda self: self.up and self.inflight)
    @rule()
    def deliver(self):
        self._step("deliver")
        if not (self.up and self.inflight):  # a replayed program may skip the precondition
            self._event("net", "idle", "nothing in flight")
            self._snapshot()
            return
        msg = self.inflight.pop(0)
        self._event("net", "frame", f"carry msg={msg}")
        self.delivered.append(msg)
        self._event("server:0", "frame", f"deliver msg={msg}")
        self._snapshot()

    @rule(fault=st.sampled_from([ToyFault("drop"), ToyFault("delay")]))
    def inject(self, fault):
        self._step("inject", fault=fault)
        self._event("net", "fault", repr(fault))
        self.t += 1.0
        if fault.kind == "drop" and self.up:
            self.up = False
            self.down_since = self.t
            self.inflight.clear()
            self._event("client:0", "status", "disconnected")
        self._snapshot()

    @precondition(lambda self: not self.up)
    @rule()
    def resume(self):
        self._step("resume")
        self.up = True
        start = len(self.delivered)
        if "dup" in self.options.mutants and start:
            start -= 1  # the injected bug: replay from one too early
        self.inflight = list(self.sent[start:])
        self._event("client:0", "frame", f"resume from={start}")
        self._event("client:0", "status", "resumed")
        self._event("net", "recovery", {"seconds": self.t - self.down_since})
        self._snapshot()

    @invariant()
    def delivered_is_prefix_of_sent(self):
        expected = self.sent[: len(self.delivered)]
        if self.delivered != expected:
            if self.recorder:
                self.recorder.violation("delivered_is_prefix_of_sent", expected, self.delivered)
            raise AssertionError(
                f"delivered_is_prefix_of_sent: expected {expected!r}, actual {self.delivered!r}"
            )


def machine_class(options: MachineOptions) -> type[ToyMachine]:
    """A configured subclass; its name is what Hypothesis prints (``state = ToyMachine()``)."""
    unknown = set(options.mutants) - {"dup"}
    if unknown:
        raise ValueError(f"unknown mutant(s) {sorted(unknown)}; the toy machine knows only 'dup'")
    return type("ToyMachine", (ToyMachine,), {"options": options, "__module__": __name__})
