"""Programs StreamMachine found against the correct reference implementation, kept as
explicit regressions: CI runs without the example database, so a fixed bug must stay fixed
by a test that replays its shrunk program step by step."""

from __future__ import annotations

from statemodel.machine import MachineOptions, machine_class
from statemodel.machine.rogue import SUPERSEDED_CODE
from statemodel.net.faults import (
    Abort, Bandwidth, CleanClose, DelayCloseFrame, DropDuringHandshake, HalfOpen, Latency, Partition, Slice,
    TruncateMidFrame,
)

StreamMachine = machine_class(MachineOptions())


def run(program, boot_chunks=(), **boot) -> None:
    state = StreamMachine()
    try:
        first = state.boot(**{"seed": 0, "chunks": list(boot_chunks), **boot})
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


def test_a_stale_stream_handle_cannot_reach_the_stream_that_reused_its_id():
    """After a server restart the replacement session numbers streams from 1 again; an echo
    on a handle of the old session (its reset not yet read) arrived in the new stream 2."""

    def program(state, first):
        streams_1 = state.open_stream(chunks=[{"kind": "text", "seed": 0, "chars": 0}], session=0)
        state.pause_consumer(stream=streams_1)
        state.open_stream(chunks=[], session=0)
        state.restart_server()
        state.forge_resume(session=0)
        state.open_stream(chunks=[], session=0)
        state.degrade(fault=Latency(direction="c2s", seconds=0.01))
        state.open_stream(chunks=[], session=0)
        state.echo(data="", stream=streams_1)
        state.settle()

    run(program)


def test_an_app_that_waited_for_input_rechecks_the_replay_bound_before_pushing():
    """Two streams of one session each pushed a 1.6 MB message: the second app had passed the
    capacity check before waiting for its `emit` command, then pushed past replay_max_bytes."""

    def program(state, first):
        state.settle()
        state.settle()
        state.open_stream(chunks=[{"kind": "text", "seed": 0, "chars": 0},
                                  {"kind": "text", "seed": 0, "chars": 1048575}], session=0)
        state.emit(chunks=[{"kind": "text", "seed": 0, "chars": 1048575}], stream=first)

    run(program)


def test_a_delayed_hello_of_an_older_attempt_does_not_end_the_session():
    """Under 100 ms c2s latency the hello of an aborted reconnect attempt reached the server
    after the next attempt had resumed: the server fenced the live connection (4006) and the
    client, treating 4006 as final, gave the session up ('recovery within bound')."""

    def program(state, first):
        state.connect()
        state.cancel(stream=first)
        state.connect()
        state.drop(fault=Abort(), session=1)
        state.degrade(fault=Latency(direction="c2s", seconds=0.1))
        state.drop(fault=CleanClose(), session=1)
        state.drop(fault=Abort(), session=0)
        state.heal()

    run(program)


def test_a_connection_declared_dead_behind_a_bandwidth_cap_closes_at_once():
    """Found by the third long run (8,922 examples, 3 failures). The server declared the
    half-open client dead at 3.1 s but fed it the rest of a 2 MB backlog at 20 KB/s until
    28 s; the session counted as disconnected meanwhile, its replay data aged out and the
    client's resume was reset(replay_evicted). The writer now stops at the close decision
    (tests/stream/test_stream_dead_link.py)."""

    def program(state, first):
        state.connect()
        state.connect()
        state.degrade(fault=Bandwidth(direction="s2c", bytes_per_second=20000))
        state.open_stream(chunks=[{"kind": "text", "seed": 0, "chars": 0},
                                  {"kind": "text", "seed": 0, "chars": 0},
                                  {"kind": "text", "seed": 0, "chars": 1048575}], session=0)
        state.drop(fault=HalfOpen(direction="c2s"), session=0)
        state.advance(seconds=30.0)

    run(program)


def test_a_fenced_client_that_is_sending_still_reads_4006():
    """Found by the take_over rule on the correct implementation. Upstream behaviour
    (trio-websocket 0.12.2): ``aclose()`` closes the receive channel before the closing
    handshake, so our reader's ``get_message()`` raised at once, and the reader ended the
    link -- cancelling the writer's bounded handshake and dropping TCP before the client had
    read the 4006 close frame. The client, sending an ack at that moment, got a write error
    and reported 1006: it never learned it was superseded. The writer now owns our close."""

    def program(state, first):
        state.drop(fault=CleanClose(), session=0)
        state.heal()
        state.cancel(stream=first)
        state.forge_resume(session=0)
        state.take_over(session=0)
        assert SUPERSEDED_CODE in state.handles[0].closes

    run(program)


def test_a_stream_read_whole_is_not_reset_after_partitions_both_ways():
    """Found by the 20,000-example run (4,283 examples in). The client read stream 2 to its
    end and retired it; partitions (c2s, then s2c) lost its ack across two reconnects; the
    server evicted the stream's unacked items by age while disconnected, and since a retired
    stream is in no ``recv`` map, the resume reported it lost: reset(replay_evicted) for a
    stream read whole (tests/stream/test_stream_retirement.py has the core of it). The
    trailing steps also hold the eviction timer's busy loop the first fix introduced."""

    def program(state, first):
        state.connect()
        state.take_over(session=0)
        state.connect()
        state.settle()
        state.restart_server()
        state.advance(seconds=0.01)
        state.fail(reason='boom', stream=first)
        state.restart_server()
        state.advance(seconds=0.01)
        state.restart_server()
        state.advance(seconds=0.01)
        state.restart_server()
        state.settle()
        state.forge_resume(session=0)
        state.take_over(session=0)
        state.settle()
        state.take_over(session=2)
        state.degrade(fault=DelayCloseFrame(seconds=3.0))
        state.heal()
        state.outage(seconds=4.0)
        streams_1 = state.open_stream(chunks=[{'size': 2315, 'kind': 'bytes', 'seed': 180}], session=0)
        state.cancel(stream=streams_1)
        state.advance(seconds=0.1)
        streams_2 = state.open_stream(chunks=[], session=0)
        state.end(stream=streams_2)
        state.degrade(fault=Partition(direction='c2s'))
        state.forge_resume(session=2)
        streams_3 = state.open_stream(chunks=[{'kind': 'json', 'value': 1_000_000_000_000_000_000_000_000_000_000}], session=0)
        state.cancel(stream=streams_3)
        state.heal()
        state.degrade(fault=Slice())
        state.settle()
        state.outage(seconds=4.0)
        state.take_over(session=0)
        state.advance(seconds=0.01)
        state.degrade(fault=DelayCloseFrame(seconds=0.5))
        state.degrade(fault=Partition(direction='c2s'))
        streams_4 = state.open_stream(chunks=[{'value': {'👍🏽\U0010ffff': {'Ô·\u2029߿Ùkâ½🎉ÍÈ·': 1000000000000000000000000000000, '́\r\n😀\uffff\u200d"\U0010eaect': None}, '߿\ufffe|': ['\U000f9ff2ó', -564428]},
             'kind': 'json'}], session=0)
        state.cancel(stream=streams_4)
        state.degrade(fault=Partition(direction='s2c'))
        state.forge_resume(session=1)
        state.settle()

    run(program, **dict(seed=0, chunks=[], context=0))


def test_a_second_connection_during_the_clients_own_reconnect_is_judged_fairly():
    """Found by the same run: an armed truncation (not healed) killed the client's link
    just before take_over's second connection resumed; the client's reconnect then fenced
    it (4006, correct). take_over had read the client's link after the fact and blamed the
    server for a link that was not yet established when the second connection resumed."""

    def program(state, first):
        state.cancel(stream=first)
        state.take_over(session=0)
        state.connect()
        state.connect()
        state.forge_resume(session=0)
        state.settle()
        state.drop(fault=DropDuringHandshake(), session=0)
        state.heal()
        state.settle()
        state.advance(seconds=0.1)
        state.advance(seconds=0.01)
        state.settle()
        state.degrade(fault=Latency(direction='c2s', seconds=0.01, jitter=0.3))
        state.advance(seconds=1.0)
        state.drop(fault=TruncateMidFrame(), session=0)
        state.heal()
        state.forge_resume(session=0)
        state.take_over(session=0)

    run(program, **dict(seed=1, chunks=[], context=0))
