"""Programs StreamMachine found against the correct reference implementation, kept as
explicit regressions: CI runs without the example database, so a fixed bug must stay fixed
by a test that replays its shrunk program step by step."""

from __future__ import annotations

from statemodel.machine import MachineOptions, machine_class

StreamMachine = machine_class(MachineOptions())


def run(program) -> None:
    state = StreamMachine()
    try:
        state.boot(seed=0)
        program(state)
        state.invariants_hold()
    finally:
        state.teardown()  # checks quiescence: everything delivered, contexts equal


def test_context_set_just_before_a_long_outage_reaches_the_client():
    """The server evicted the unacked ``ctx`` item by age during a 25 s outage: its context
    kept ``k1``, the client's never got it (PROTOCOL.md §6: stream 0 is never evicted)."""

    def program(state):
        session = state.connect()
        stream = state.open_stream(chunks=[], session=session)
        state.set_context(stream=stream, value="v")
        state.outage(seconds=25.0)

    run(program)


def test_cancel_just_before_a_long_outage_ends_the_stream():
    """The server's ``error`` (cancelled) was evicted by age, and the resume's ack of the
    data before it retired the stream: the welcome said ``recovered`` and the client waited
    for an end that could never come (PROTOCOL.md §8a: evicted items are not acknowledged)."""

    def program(state):
        session = state.connect()
        stream = state.open_stream(chunks=[{"kind": "text", "seed": 0, "chars": 0}], session=session)
        state.heal()
        state.heal()
        state.heal()
        state.cancel(stream=stream)
        state.outage(seconds=25.0)

    run(program)
