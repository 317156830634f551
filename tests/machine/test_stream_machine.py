"""pytest collects the state machine itself: the correct reference implementation must pass.

The ``ci`` profile (statemodel/profiles.py) keeps this deterministic and bounded; the
``nightly`` profile runs it long (``pytest --hypothesis-profile=nightly -m slow``).
"""

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from statemodel.machine import MachineOptions, machine_class
from statemodel.machine.rogue import SUPERSEDED_CODE
from statemodel.model import InvariantViolation

StreamMachine = machine_class(MachineOptions())

# Collected by pytest: runs under whichever --hypothesis-profile is active.
TestStreamMachine = StreamMachine.TestCase


@pytest.mark.slow
def test_long_run_on_the_correct_implementation():
    """DESIGN.md §7: zero false failures over a long run (nightly: 20,000 examples)."""
    run_state_machine_as_test(StreamMachine, settings=settings(settings.get_profile("nightly"), database=None))


def test_a_second_connection_with_the_real_token_is_fenced_both_ways():
    """take_over: a second connection resumes session 0 with its real token. The correct
    server fences the client (4006), the client resumes and fences it in turn, nothing is
    lost; without fencing (the no_fencing mutant) the client's connection stays open."""
    def program(cls):
        state = cls()
        try:
            first = state.boot(seed=0, chunks=[{"kind": "text", "seed": 0, "chars": 3}], context=1)
            state.take_over(session=0)
            state.emit(stream=first, chunks=[{"kind": "text", "seed": 1, "chars": 5}])
            state.invariants_hold()
        finally:
            state.teardown()
        return state

    state = program(machine_class(MachineOptions(record=True)))
    assert SUPERSEDED_CODE in state.handles[0].closes
    with pytest.raises(InvariantViolation, match="a newer connection fences the older one"):
        program(machine_class(MachineOptions(mutants=frozenset({"no_fencing"}))))


def test_settle_ends_when_the_last_observation_makes_the_system_quiet():
    """settle wakes on what the observers report (statuses, chunks, outcomes), not on a poll:
    it ends at the virtual instant the client's resume is reported and the stream is
    delivered, not at the next tick of a 20 ms poll (every tick cost two scheduler passes)."""
    from statemodel.net.faults import Abort

    state = machine_class(MachineOptions(record=True))()
    try:
        state.boot(seed=0, chunks=[{"kind": "bytes", "seed": 1, "size": 40_000}], context=None)
        state.drop(session=0, fault=Abort())
        state.settle()
        events = [e for e in state.recorder.steps[-1]["events"]]
    finally:
        state.teardown()
    recovery = [e for e in events if e["kind"] == "recovery"]
    observed = [e for e in events if e["kind"] in ("status", "chunk", "outcome")]
    assert recovery and observed, events
    assert recovery[0]["detail"]["seconds"] > 0  # it did wait for the reconnect
    assert recovery[0]["t"] == observed[-1]["t"]


def test_buffer_bound_is_judged_with_the_exact_largest_chunk():
    """The bounds invariant reads a free lower bound of the largest chunk first; where that
    fails, the exact figure decides. A text of n characters is up to 4n bytes: judged by
    its length alone, buffers legitimately above 2x its length were a false failure."""
    from types import SimpleNamespace

    from statemodel.machine.stream_machine import StreamMachine
    from statemodel.model import Model

    class Target:
        """Bound: 2 x the largest message (a bound that grows with it, like the real ones)."""

        def __init__(self, buffered: int) -> None:
            self.buffered = buffered

        def check_bounds(self, largest: int) -> None:
            if self.buffered > 2 * largest:
                raise InvariantViolation("replay buffers within bounds", "server",
                                         f"at most {2 * largest} bytes", f"{self.buffered} bytes")

    model = Model(lambda command: list(command["chunks"]))
    model.open_stream(model.new_session(), {"op": "emit", "chunks": ["é" * 1000]})  # 2,000 bytes
    assert model.largest.floor == 1000
    machine = SimpleNamespace(model=model, target=Target(3000))
    StreamMachine._check_bounds(machine)  # within 2 x 2,000
    machine.target.buffered = 4001
    with pytest.raises(InvariantViolation, match="at most 4000 bytes"):
        StreamMachine._check_bounds(machine)
