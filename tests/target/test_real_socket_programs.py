"""Programs that once failed over real sockets with no bug in the server (false failures).

Each runs the real machine, as Hypothesis printed it, against the reference server reached
over loopback: through ``statemodel serve --app script`` at a ws:// URL, and as the
reference target on ``--transport tcp``.
"""

from __future__ import annotations

import pytest

from statemodel.machine import MachineOptions, machine_class
from statemodel.net.faults import Partition


@pytest.fixture(params=["ws", "reference"])
def real_options(request, script_server_url) -> MachineOptions:
    target = script_server_url if request.param == "ws" else "reference"
    return MachineOptions(target=target, transport="tcp")


def test_forged_resume_during_a_partition_is_not_the_servers_failure(real_options) -> None:
    """Issue 15.3: with a network-wide Partition in force, the rogue peer dialled through the
    fault proxy, stalled like every new connection, and ``dial()`` raised
    ``trio.TooSlowError`` after ``connect_timeout``: reported as the server's failure. A rogue
    is not on the client's path; it dials around the client's faults."""
    state = machine_class(real_options)()
    try:
        state.boot(seed=11598, chunks=[], context=-7)
        state.invariants_hold()
        state.degrade(fault=Partition())
        state.invariants_hold()
        state.forge_resume(session=0)
        state.invariants_hold()
        assert state.target.net.partitioned()  # the rogue got through the partition's time
    finally:
        state.teardown()


def test_a_failure_hypothesis_could_not_replay_is_still_reported_as_a_failure() -> None:
    """Over real sockets a failure can recur at another step on replay; Hypothesis then raises
    FlakyFailure (holding the original error and a FlakyStrategyDefinition). The fuzz runner
    reported that as an infrastructure error with 0 examples and the error's name buried in
    text (the first 1,000-example tcp run); the original error is a failure."""
    from hypothesis.errors import FlakyFailure, FlakyStrategyDefinition

    from statemodel.fuzz.runner import extract_failures, unreplayable_failures
    from statemodel.report.program import FAILING_PREFIX

    original = ValueError("`seconds` must be non-negative")
    flaky = FlakyFailure("Inconsistent results from replaying a test case!",
                         [original, FlakyStrategyDefinition("stopped drawing earlier")])
    assert extract_failures(flaky) == []  # no printed program to find
    assert unreplayable_failures(flaky) == [(original, "", None)]
    assert unreplayable_failures(RuntimeError("infrastructure")) == []
    # with a printed program (the first ws:// run): the failure is the error it holds
    noted = FlakyFailure("Hypothesis run_state_machine produces unreliable results", [KeyError("k")])
    for line in (FAILING_PREFIX, "state = StreamMachine_tcp()", "state.teardown()"):
        noted.add_note(line)
    [(error, program, _)] = extract_failures(noted)
    assert isinstance(error, KeyError) and program.endswith("state.teardown()")


def test_on_the_real_clock_what_a_rule_leaves_for_later_draws_is_the_programs_choice(monkeypatch) -> None:
    """A 1,000-example tcp run ended in FlakyStrategyDefinition ("the boolean was forced ...
    while selecting a rule"): interleave_then_drop opened a stream when fewer than two were live
    *on the wire*, so whether the session had one stream more (which restart's precondition and
    open_stream's limit read) was timing, and Hypothesis replaying the example drew differently.
    The same program must leave the same streams and enabled rules whatever the wire says."""
    seen = []
    for wire in ("every stream live", "no stream live"):
        state = machine_class(MachineOptions(transport="tcp"))()
        try:
            if wire == "no stream live":  # e.g. the server reset them a moment ago
                monkeypatch.setattr(state, "_live_handles", lambda handle: [])
            state.boot(seed=1, chunks=[], context=None)
            state.open_stream(session=0, chunks=[])
            state.interleave_then_drop(session=0)
            enabled = sorted(r.function.__name__ for r in type(state).setup_state().rules
                             if all(pre(state) for pre in r.preconditions))
            seen.append((len(state.handles[0].streams), enabled))
        finally:
            state.teardown()
            monkeypatch.undo()
    assert seen[0] == seen[1]


def test_on_the_real_clock_a_violation_is_kept_and_raised_at_teardown() -> None:
    """A failure over real sockets can recur at another step when Hypothesis re-runs the
    example; a run that stopped earlier drew less, Hypothesis called that inconsistent data
    generation, and the failure was lost (a 1,000-example tcp run, example 144: 'session
    context preserved'). On the real clock every step runs and teardown raises the first
    violation; on the virtual clock the step that saw it raises, as before."""
    from statemodel.model import InvariantViolation

    seen = InvariantViolation("ordered, gap-free, duplicate-free delivery", "stream 0.0", "chunk 1", "chunk 2")
    for transport in ("tcp", "sim"):
        state = machine_class(MachineOptions(transport=transport))()
        raised = None
        try:
            state.boot(seed=1, chunks=[], context=None)
            state._violation(seen)  # what a consumer task does when it sees a wrong chunk
            try:
                state.invariants_hold()
                state.connect()  # the program goes on: its draws stay the program's
                state.invariants_hold()
            except InvariantViolation as exc:
                raised = ("step", exc)
            if transport == "tcp":
                assert len(state.handles) == 2 and raised is None
        finally:
            try:
                state.teardown()
            except InvariantViolation as exc:
                raised = raised or ("teardown", exc)
        assert raised == (("teardown" if transport == "tcp" else "step"), seen), transport


def test_a_drop_mid_message_lands_inside_a_ws_targets_large_fragments(script_server_url) -> None:
    """emit(drop=True) slows the downlink so the drop lands after a few fragments of a long
    message. At 200 KB/s a ws:// target's 256 KiB fragments took 1.3 s each: the client's
    pings queued behind them, it declared the link dead first, and the drop never landed
    inside a message (drop_inside_fragments: 0 of 20 ws:// examples, seed 9300), after a
    3.9 s wait. On the real clock the downlink is as fast as lands it within 0.25 s."""
    from statemodel.machine.stream_machine import MID_MESSAGE_FRAGMENTS

    state = machine_class(MachineOptions(target=script_server_url, transport="tcp"))()
    try:
        stream = state.boot(seed=5, chunks=[], context=None)
        chunks = [{"kind": "bytes", "seed": 5, "size": 1_600_000}]
        # Judged on the planned wait, not on where a real-time drop landed: that depends on
        # how soon a loaded host lets the server send its first fragment.
        fragment = state.target.config.fragment_size
        assert 1_600_000 > (MID_MESSAGE_FRAGMENTS + 1) * fragment  # a message long enough to cut inside
        assert state._mid_message_wait(chunks) <= 0.25 + 1e-9  # REAL_MID_MESSAGE_WAIT
        state.emit(stream=stream, chunks=chunks, drop=True)
        state.invariants_hold()
    finally:
        state.teardown()
