"""Programs StreamMachine found against the correct reference implementation, kept as
explicit regressions: CI runs without the example database, so a fixed bug must stay fixed
by a test that replays its shrunk program step by step."""

from __future__ import annotations

from statemodel.machine import MachineOptions, machine_class
from statemodel.net.faults import Abort, CleanClose, DropDuringHandshake, HalfOpen

StreamMachine = machine_class(MachineOptions())


def run(program, boot_chunks=()) -> None:
    state = StreamMachine()
    try:
        first = state.boot(seed=0, chunks=list(boot_chunks))
        program(state, first)
        state.invariants_hold()
    finally:
        state.teardown()  # checks quiescence: everything delivered, contexts equal


def test_context_set_just_before_a_long_outage_reaches_the_client():
    """The server evicted the unacked ``ctx`` item by age during a 25 s outage: its context
    kept ``k1``, the client's never got it (PROTOCOL.md §6: stream 0 is never evicted)."""

    def program(state, first):
        stream = state.open_stream(chunks=[], session=0)
        state.set_context(stream=stream, value="v")
        state.outage(seconds=25.0)

    run(program)


def test_cancel_just_before_a_long_outage_ends_the_stream():
    """The server's ``error`` (cancelled) was evicted by age, and the resume's ack of the
    data before it retired the stream: the welcome said ``recovered`` and the client waited
    for an end that could never come (PROTOCOL.md §8a: evicted items are not acknowledged)."""

    def program(state, first):
        stream = state.open_stream(chunks=[{"kind": "text", "seed": 0, "chars": 0}], session=0)
        state.heal()
        state.heal()
        state.heal()
        state.cancel(stream=stream)
        state.outage(seconds=25.0)

    run(program)


def test_handshake_drops_armed_before_a_heal_do_not_outlive_it():
    """Five DropDuringHandshake drops armed before the settle's heal each cost the client a
    2 s handshake timeout afterwards: 'recovery within bound' failed on a correct server."""

    def program(state, first):
        state.cancel(stream=first)
        for _ in range(4):
            state.drop(fault=DropDuringHandshake(), session=0)
        state.drop(fault=HalfOpen(), session=0)
        state.drop(fault=CleanClose(), session=0)
        state.drop(fault=Abort(), session=0)
        state.drop(fault=DropDuringHandshake(), session=0)

    run(program, boot_chunks=[{"kind": "text", "seed": 0, "chars": 0}])
