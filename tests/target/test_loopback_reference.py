"""The reference target on real sockets (issue 13.4): ``--transport tcp`` and ``netns``.

The real machine runs a few generated examples on each, and explicit programs check what
only the reference target can do there: restarts, and kernel faults on the netns leg.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from statemodel.machine import MachineOptions, machine_class
from statemodel.net import faults as F
from statemodel.net.netns import unavailable_reason

NETNS = [pytest.mark.netns, pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))]
TRANSPORTS = ["tcp", pytest.param("netns", marks=NETNS)]
FEW = settings(max_examples=3, stateful_step_count=10, deadline=None, database=None, derandomize=True,
               phases=[Phase.generate], suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_reference_target_runs_generated_examples(transport: str) -> None:
    cls = machine_class(MachineOptions(transport=transport))
    assert cls.real_time
    run_state_machine_as_test(cls, settings=FEW)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_restart_over_real_sockets_resets_the_client_onto_a_new_epoch(transport: str) -> None:
    """A new Server on the same listener: the client's resume meets a new epoch, the stream
    it had is reset, and the session it lands in belongs to the second generation."""
    state = machine_class(MachineOptions(transport=transport))()
    try:
        stream = state.boot(seed=1, chunks=[{"kind": "text", "seed": 1, "chars": 10}], context=None)
        state.invariants_hold()
        old_epoch = state.target.server.epoch
        state.restart_server()
        state.invariants_hold()
        state.settle()
        state.invariants_hold()
        handle = state.handles[0]
        assert state.target.server.epoch != old_epoch
        assert state.target.generation_of(handle.session_id) == 1
        assert state.model.streams[stream.key].outcome is not None
    finally:
        state.teardown()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_partitioned_network_heals_and_nothing_is_lost(transport: str) -> None:
    """A network-wide partition (iptables DROP on the veth under netns) while data is owed,
    a forged resume meanwhile (around the partition), then heal: everything arrives."""
    state = machine_class(MachineOptions(transport=transport))()
    try:
        stream = state.boot(seed=2, chunks=[], context=3)
        state.invariants_hold()
        state.degrade(fault=F.Partition())
        state.emit(stream=stream, chunks=[{"kind": "bytes", "seed": 2, "size": 70_000}])
        state.forge_resume(session=0)
        state.invariants_hold()
        state.settle()
        state.invariants_hold()
        assert not state.model.streams[stream.key].pending
    finally:
        state.teardown()


def _enabled(state, rule_name: str) -> bool:
    rule = getattr(type(state), rule_name).hypothesis_stateful_rule
    return all(precondition(state) for precondition in rule.preconditions)


def test_on_real_time_what_rules_may_run_depends_on_the_program_not_the_network() -> None:
    """Hypothesis replays an example to shrink it; a precondition or bundle that read the
    network's timing drew differently on replay (FlakyStrategyDefinition: no failure found
    over real sockets could be shrunk). A stream the server reset still counts as running
    until the program ends it, so `restart_server` stays enabled once the reset arrived."""
    state = machine_class(MachineOptions(transport="tcp"))()
    try:
        stream = state.boot(seed=3, chunks=[{"kind": "text", "seed": 3, "chars": 5}], context=None)
        state.restart_server()
        state.settle()  # the reset has arrived: the stream's outcome is known
        assert state.model.streams[stream.key].outcome is not None
        assert _enabled(state, "restart_server") and _enabled(state, "forge_resume")
        state.end(stream=stream)
        assert not _enabled(state, "restart_server")  # the program released its only stream
    finally:
        state.teardown()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_recorded_run_over_real_sockets_shows_the_wire(transport: str) -> None:
    """A fuzz run's final replay and the report's re-run record the wire (``Recorder.wire``).
    The machine watched ``target.net`` before ``start``, and the reference target on tcp/netns
    builds its proxy in ``start``: every such replay failed in ``boot`` ("'NoneType' object
    has no attribute 'trace'"), then in teardown's heal, so a 400-example tcp run reported
    its four failures as one AttributeError and lost what had failed."""
    state = machine_class(MachineOptions(transport=transport, record=True))()
    assert state.recorder.wire  # outside a fuzz run's collector: what a report re-run does
    try:
        state.boot(seed=3, chunks=[{"kind": "text", "seed": 3, "chars": 10}], context=None)
        state.invariants_hold()
    finally:
        state.teardown()
    kinds = {event["kind"] for step in state.recorder.to_json()["steps"] for event in step["events"]}
    assert {"connect", "frame"} <= kinds, kinds  # the proxy's links and the decoded frames


def test_a_settle_ends_when_the_servers_context_caught_up_not_at_its_bound(monkeypatch) -> None:
    """Context the client sets reaches the server's copy as a ctx item, with no event the
    machine observes. On the real clock settle waited for an observer's event there and ran
    every such wait to its recovery bound (4.6 s each: half of a tcp run's wall time), then
    passed; it looks again instead. Judged by whether settle saw the system quiet (its
    ``recovery`` note), which a wait that ran out its bound never records: not by a time.
    (No starvation credit here, which would move the bound out and let the old wait look
    once more after it.)"""
    from statemodel.target import stall

    monkeypatch.setattr(stall, "host_stall", lambda: 0.0)
    state = machine_class(MachineOptions(transport="tcp", record=True))()
    try:
        state.boot(seed=4, chunks=[], context=None)
        state.degrade(fault=F.Latency(seconds=0.1))  # the ctx item is still in flight at settle
        state.client_set_context(session=0, value="v")
        state.settle()
        events = list(state.recorder.steps[-1]["events"])  # teardown's own settle appends to it
        assert state.model.context_settled(0, state.target.session_context(state.handles[0].session_id))
    finally:
        state.teardown()
    assert [e for e in events if e["kind"] == "recovery"], events


def test_a_settle_heals_without_the_base_latency_and_puts_it_back() -> None:
    """The proxy's 5 ms base latency keeps frames in flight across rules (a drop lands on
    them); no drop comes while the machine settles, where each reconnect paid it on every
    round trip (7% of a tcp fuzz run). The settle heals without it; the next rule has it."""
    import contextlib

    state = machine_class(MachineOptions(transport="tcp"))()
    try:
        state.boot(seed=1, chunks=[], context=0)
        front = state.target.front

        def in_force() -> list:
            return [fault for fault, _ in front.net.faults.values()]

        base = front.base_latency
        assert in_force() == [base]
        seen = []
        settling = front.settling

        @contextlib.contextmanager
        def watched():
            with settling():
                seen.append("entered")
                yield
                seen.append(in_force())  # after the settle's heal and its wait for recovery

        front.settling = watched
        state.degrade(fault=F.Partition())
        state.settle()
        assert seen == ["entered", []]
        assert in_force() == [base]  # back for the next rule
        state.degrade(fault=F.Partition())
        state.heal()  # the rule, not a settle: the base latency stays
        assert in_force() == [base]
    finally:
        state.teardown()


def test_a_redeliver_stops_waiting_once_nothing_more_is_on_its_way(monkeypatch) -> None:
    """On the real clock a redeliver waits (REDELIVER_WAIT at most) for its receiver to hold
    an item older than its newest; it also stops once nothing that could make one is still
    on its way: the client's items all acknowledged, nothing owed to the client."""
    import statemodel.machine.stream_machine as machine_code

    state = machine_class(MachineOptions(transport="tcp"))()
    try:
        stream = state.boot(seed=1, chunks=[], context=0)
        state.settle()  # nothing owed to the client; the server's acks may still be on their way
        handle = state._session(0)
        quiet = lambda: not state._more_may_come(handle, "server")  # noqa: E731
        assert state.run(machine_code.timers.wait_until, quiet, state._now() + 10.0, 0.005)  # a bound, not a verdict
        assert not state._more_may_come(handle, "client")
        waits = []
        real_wait = machine_code.timers.wait_until

        async def wait_until(done, deadline, poll):
            waits.append(done())  # what the wait reads as it starts
            return await real_wait(done, deadline, poll)

        monkeypatch.setattr(machine_code.timers, "wait_until", wait_until)
        state.redeliver(session=0, to="server", back=1)
        assert waits and waits[0] is True  # over at once: at most one item, and none in flight
        state.degrade(fault=F.Partition())
        state.client_set_context(session=0, value="v", overwrite=False)
        assert state._more_may_come(handle, "server")  # a ctx item the server has not acknowledged
        state.emit(stream=stream, chunks=[{"kind": "json", "value": 1}])
        assert state._more_may_come(handle, "client")  # a chunk the server owes the client
    finally:
        state.teardown()
