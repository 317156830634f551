"""Issue 15's blind spots, reached on purpose: older items re-delivered both ways, context set
by the client (online and offline), resume outcomes judged directly. Each mutant written for
them fails a short program here that the correct implementation passes, with a message that
names what was wrong; the hunts (test_mutants_caught.py) find them without being told how."""

from __future__ import annotations

import pytest

from statemodel.machine import MachineOptions, machine_class
from statemodel.model import InvariantViolation
from statemodel.net.faults import Abort, HalfOpen, Latency, Partition
from statemodel.stream.client import Resumed

TEXT = [{"kind": "text", "seed": 1, "chars": 3}, {"kind": "text", "seed": 2, "chars": 3}]
BYTES_64K = [{"kind": "bytes", "seed": 1, "size": 65536}]


def run(program, mutants=(), **boot):
    """Run ``program(state, first_stream)`` after boot and settle; return the machine."""
    state = machine_class(MachineOptions(mutants=frozenset(mutants)))()
    try:
        first = state.boot(**{"seed": 0, "chunks": [], "context": 1, **boot})
        program(state, first)
        state.invariants_hold()
    finally:
        state.teardown()  # settles: everything delivered, both context copies equal
    return state


def older_copy_to_client(state, first):
    state.emit(stream=first, chunks=TEXT)
    state.advance(seconds=0.1)
    state.redeliver(session=0, to="client", back=1)


def older_copy_to_server(state, first):
    state.echo(stream=first, data="a")
    state.echo(stream=first, data="b")
    state.advance(seconds=0.1)
    state.redeliver(session=0, to="server", back=1)


def context_set_offline(state, first):
    state.client_set_context(session=0, value=5, offline=True)


def context_overwritten_online_then_drop(state, first):
    state.client_set_context(session=0, value=5)
    state.client_set_context(session=0, value=6, overwrite=True)
    state.drop(session=0, fault=Abort())


def drop_before_anything_arrived(state, first):
    state.drop(session=0, fault=Abort())


def second_connection_then_drop(state, first):
    state.take_over(session=0)
    state.drop(session=0, fault=Abort())


def long_connected_then_drop(state, first):
    state.advance(seconds=30.0)
    state.advance(seconds=30.0)
    state.drop(session=0, fault=Abort())


def data_evicted_during_outage(state, first):
    state.emit(stream=first, chunks=TEXT[:1])
    state.degrade(fault=Partition(direction="s2c"))
    state.emit(stream=first, chunks=TEXT[1:])
    state.outage(seconds=25.0)


def exact_multiples_of_the_fragment_size(state, first):
    state.emit(stream=first, chunks=BYTES_64K + BYTES_64K)


def big_message_then_drop(state, first):
    state.emit(stream=first, chunks=[{"kind": "bytes", "seed": 1, "size": 2 * 1024 * 1024}])
    state.drop(session=0, fault=Abort())


# mutant -> (program, the scenario class it reaches, the invariant the mutant breaks)
CASES = {
    "dedupe_last_only": (older_copy_to_server, "older_item_to_server", "content never sent: 'statemodel: re-delivered"),
    "client_context_offline_dropped": (context_set_offline, "client_context_offline",
                                       r"session context preserved violated at session 0 \(server side\)"),
    "empty_resume_is_new": (drop_before_anything_arrived, None,
                            r"reset only when the protocol allows it violated at session 0 resume #1"),
    "stale_connection_ends_session": (second_connection_then_drop, None,
                                      r"reset only when the protocol allows it violated at session 0 resume #1"),
    "recovered_after_restart": (lambda state, first: state.restart_server(), None,
                                r"recovered only under the session's own server epoch violated at session 0 resume #1"),
    "lost_ignored_by_client": (data_evicted_during_outage, None,
                               r"every stream a resume reports lost is reset on the client violated at session 0 resume #1"),
    "ttl_from_last_resume": (long_connected_then_drop, None,
                             r"reset only when the protocol allows it violated at session 0 resume #1 at t=60"),
    "fin_by_short_fragment": (exact_multiples_of_the_fragment_size, "size_at_fragment_multiple", "no loss at quiescence"),
    "trim_when_full": (big_message_then_drop, "replay_buffer_full", "gap on stream 1"),
}


@pytest.mark.parametrize("mutant", sorted(CASES))
def test_each_new_mutant_fails_a_short_program_the_reference_passes(mutant):
    program, scenario, message = CASES[mutant]
    state = run(program)
    if scenario is not None:
        assert scenario in state.reached, sorted(state.reached)
    with pytest.raises(InvariantViolation, match=message):
        run(program, [mutant])


def test_an_older_copy_reaches_the_client_and_a_last_only_dedupe_delivers_it():
    assert "older_item_to_client" in run(older_copy_to_client).reached
    with pytest.raises(InvariantViolation, match="re-delivered copy of client-bound item 1:1"):
        run(older_copy_to_client, ["dedupe_last_only"])


def test_context_the_client_overwrites_reaches_the_server_in_order():
    state = run(context_overwritten_online_then_drop)
    assert {"client_context_online", "unacked_ge2_at_drop"} <= state.reached
    assert state.model.sessions[0].context["c2"] == 6


BIG = [{"kind": "bytes", "seed": 1, "size": 300_000}]  # 19 fragments of 16 KiB on the sim


@pytest.mark.parametrize("scenario, program", [
    ("fencing_during_replay", lambda state, first: (state.emit(stream=first, chunks=BIG),
                                                     state.take_over(session=0, during_replay=True))),
    ("resume_races_restart", lambda state, first: (state.emit(stream=first, chunks=TEXT),
                                                    state.restart_during_resume(session=0))),
    ("cancel_while_offline", lambda state, first: state.cancel(stream=first, offline=True)),
    ("replay_interleaves_streams", lambda state, first: state.interleave_then_drop(session=0)),
    ("expiry_boundary", lambda state, first: state.expire_edge(session=0, deadline="ttl", ticks=1)),
    ("retransmit_non_last", lambda state, first: (state.emit(stream=first, chunks=BIG),
                                                   state.drop(session=0, fault=Abort()))),
])
def test_rules_built_for_a_scenario_reach_it_on_the_correct_server(scenario, program):
    assert scenario in run(program).reached


def test_a_context_key_the_client_overwrote_last_is_awaited_on_the_server_before_judging():
    """Found by the hostile machine: settle judged the server's copy while the client's last
    overwrite was still in flight (quiet looked at the client's copy only): a false failure."""
    run(lambda state, first: (state.client_set_context(session=0, value=1),
                              state.degrade(fault=Latency(direction="c2s", seconds=0.1)),
                              state.client_set_context(session=0, value=2, overwrite=True)))


# Issue 14: the escapes of `statemodel mutants --budget 30`. Each needs a drop right behind
# (or, for a cancel, right before) a command, then a check before anything resets the stream.
# One step each, and the step itself settles: a later restart cannot hide the bug.
MIB_2 = [{"kind": "bytes", "seed": 1, "size": 2 * 1024 * 1024}]
IN_FLIGHT = {
    "end_not_replayed": (lambda state, first: state.end(stream=first, drop=True), "no loss at quiescence"),
    "cancel_lost_on_resume": (lambda state, first: state.cancel(stream=first, offline=True),
                              "cancellation survives resume"),
    "partial_per_connection": (lambda state, first: state.emit(stream=first, chunks=BIG, drop=True),
                               "ordered, gap-free, duplicate-free delivery"),
    "trim_when_full": (lambda state, first: state.emit(stream=first, chunks=MIB_2, drop=True),
                       "no exception escapes as anything but a clear error"),
}


@pytest.mark.parametrize("mutant", sorted(IN_FLIGHT))
def test_a_drop_drawn_with_its_command_fails_in_that_step_even_if_a_restart_follows(mutant):
    step, message = IN_FLIGHT[mutant]

    def program(state, first):
        step(state, first)
        state.restart_server()  # resets every stream: a check left to the end would pass

    run(program)
    with pytest.raises(InvariantViolation, match=message):
        run(program, [mutant])


def test_fail_with_drop_replays_the_error():
    program = lambda state, first: state.fail(stream=first, reason="boom", drop=True)  # noqa: E731
    run(program)
    with pytest.raises(InvariantViolation, match=r"expected outcome \('error', 'boom'\)"):
        run(program, ["end_not_replayed"])


def test_the_same_drop_as_separate_rules_is_hidden_by_a_later_restart():
    """Why the drop is drawn with its command: as two rules the restart resets the stream
    before any check, and the mutant passes."""
    run(lambda state, first: (state.end(stream=first), state.drop(session=0, fault=Abort()), state.restart_server()),
        ["end_not_replayed"])


def test_emit_with_drop_lands_inside_a_long_message_and_on_a_short_answer_in_flight():
    assert "drop_inside_fragments" in run(lambda state, first: state.emit(stream=first, chunks=BIG, drop=True)).reached
    # a short answer: the drop lands one step after the command, on the answer in flight
    short = lambda state, first: state.emit(stream=first, chunks=TEXT, drop=True)  # noqa: E731
    assert "drop_inside_fragments" not in run(short).reached
    with pytest.raises(InvariantViolation, match="no loss at quiescence"):
        run(short, ["inflight_per_connection"])


@pytest.mark.parametrize("mutant, message", [
    ("evict_without_reset", "no loss at quiescence"),
    ("lost_ignored_by_client", "every stream a resume reports lost is reset on the client"),
    ("recovered_despite_loss", "recovered only when nothing was lost"),
])
def test_an_outage_that_starts_mid_stream_ages_the_answer_out_and_the_resume_must_say_so(mutant, message):
    program = lambda state, first: state.outage(seconds=25.0, mid_stream=True)  # noqa: E731
    assert "unacked_ge2_at_drop" in run(program).reached
    run(lambda state, first: state.outage(seconds=25.0), [mutant])  # nothing in flight: nothing to lose
    with pytest.raises(InvariantViolation, match=message):
        run(program, [mutant])


def test_a_step_that_settles_checks_the_invariants_before_the_settle_drains_the_buffers():
    """no_backpressure overfills the replay buffer while the answer streams; the settle that
    ends emit(drop=True) empties it, so the bound is checked between the drop and the settle."""
    program = lambda state, first: state.emit(stream=first, chunks=MIB_2 * 2, drop=True)  # noqa: E731
    run(program)
    with pytest.raises(InvariantViolation, match="replay buffers within bounds"):
        run(program, ["no_backpressure"])


class _HeldResumes:
    """The client's status channel, with ``Resumed`` events held back while ``hold`` is set:
    a status watcher that has seen a replacement session's ``Connected`` but not yet its
    ``Resumed`` (what a loaded host produced over tcp)."""

    def __init__(self, inner):
        import trio

        self.inner, self.hold, self.released = inner, True, trio.Event()

    def __aiter__(self):
        return self

    async def __anext__(self):
        status = await self.inner.__anext__()
        if isinstance(status, Resumed) and self.hold:
            await self.released.wait()
        return status


class _HeldMachine(machine_class(MachineOptions())):
    """The sim machine, each client's status channel wrapped in ``_HeldResumes`` (``held``)."""

    async def _watch_status(self, handle):
        handle.client.status = _HeldResumes(handle.client.status)
        self.held.append(handle.client.status)
        await super()._watch_status(handle)


def _held_machine() -> _HeldMachine:
    state = _HeldMachine()
    state.held = []  # filled as boot starts the first watcher
    return state


def test_context_the_client_sets_between_a_replacement_welcome_and_its_report_belongs_to_the_new_session():
    """Found over tcp at load (session 8, realnet run 2): the client set a key after the
    welcome that replaced its session, while the machine had seen ``Connected`` (new session
    id) but not yet ``Resumed(reset)``. The key lives in the new session; the model put it in
    the old one and dropped it at the reset: "session context preserved ... expected
    '<unset>'; got 0", a false failure."""
    state = _held_machine()
    held = state.held
    try:
        state.boot(seed=0, chunks=[], context=1)
        handle = state.handles[0]
        first = handle.session_id
        state.restart_server()
        state.advance(seconds=5.0)  # the client redials and is welcomed into a fresh session
        assert handle.session_id != first and state.model.sessions[0].generation == 0  # reset not yet reported
        state.client_set_context(session=0, value=5)
        held[0].hold = False
        state.run(_set, held[0].released)
        state.advance(seconds=1.0)  # the watcher reports the reset
        assert state.model.sessions[0].generation == 1 and state.model.sessions[0].context == {"c2": 5}
    finally:
        state.teardown()


def test_keys_set_in_two_unreported_replacements_each_belong_to_their_own_session():
    """Two restarts while the watcher still holds the first replacement's Resumed: the key
    set in the first replacement dies with it, the one set in the second survives."""
    state = _held_machine()
    held = state.held
    try:
        state.boot(seed=0, chunks=[], context=1)
        proto = state.handles[0].client.proto
        sessions = []
        for value in (5, 6):
            state.restart_server()
            state.advance(seconds=5.0)
            sessions.append(proto.session)
            state.client_set_context(session=0, value=value)
        assert sessions[0] != sessions[1] and state.model.sessions[0].generation == 0
        held[0].hold = False
        state.run(_set, held[0].released)
        state.advance(seconds=1.0)
        state.invariants_hold()
        assert state.model.sessions[0].generation == 2 and state.model.sessions[0].context == {"c3": 6}
    finally:
        state.teardown()


async def _set(event) -> None:
    event.set()


def test_a_burst_just_over_the_replay_bound_fails_the_bound_check_in_its_own_step():
    """burst(over=1): two messages of replay_max_bytes + 1, checked after the step while both
    are unacked; over=0 reaches the bound exactly, which the check allows (no off-by-one)."""
    run(lambda state, first: state.burst(stream=first, over=1))
    run(lambda state, first: state.burst(stream=first, over=0), ["no_backpressure"])
    with pytest.raises(InvariantViolation, match="replay buffers within bounds"):
        run(lambda state, first: state.burst(stream=first, over=1), ["no_backpressure"])


def test_one_session_overfilling_its_buffer_is_caught_beside_a_session_that_holds_nothing():
    """The total over all sessions allows sessions x (bound + largest): a second, idle session
    hid one session holding two messages over its own bound (blindspots' review, session 9).
    Each session is checked on its own too."""
    def program(state, first):
        state.connect()
        state.burst(stream=first, over=1)

    run(program)
    with pytest.raises(InvariantViolation, match="replay buffers within bounds violated at one session"):
        run(program, ["no_backpressure"])
