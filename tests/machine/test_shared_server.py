"""A server others use too (``statemodel fuzz --workers N`` against one URL): sessions it sheds
for pressure the machine cannot see are allowed, and only those (PROTOCOL.md §6 "Pressure").

The target is the reference server on the sim (virtual time), seen as a fuzz worker sees an
external server: the machine is not told which sessions it shed (no
``evicted_under_pressure``), and the client's timers are the real-socket ones (dead_after
0.4 s and close_timeout 0.5 s: together still shorter than the server's evict_grace). The server sheds a session through its own
shedding path (``_shed``: the 1013 cut, the eviction, the resume's reset), as pressure from
another worker's sessions would make it.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import trio

from statemodel.machine import MachineOptions, machine_class
from statemodel.model import InvariantViolation
from statemodel.net.faults import Abort, DelayCloseFrame, DropCloseFrame, Latency, Partition
from statemodel.stream.errors import CloseCode
from statemodel.target.proxied import REAL_TIME_CONFIG
from statemodel.target.reference import ReferenceTarget
from statemodel.target.shared import EVICT_GRACE, WITHHELD, may_have_shed, shared_url

TEXT = [{"kind": "text", "seed": 1, "chars": 3}, {"kind": "text", "seed": 2, "chars": 3}]
NOT_ALLOWED = "reset only when the protocol allows it"


class SeenFromOutside(ReferenceTarget):
    """The reference server as one of several fuzz workers sees it."""

    evicted_under_pressure = None  # the machine cannot see inside the server

    def __init__(self, options, seed: int, shared: bool) -> None:
        super().__init__(options, seed)
        self.config = replace(REAL_TIME_CONFIG, mutants=self.config.mutants)
        self.shared = shared

    def may_have_shed(self, down_for, closes) -> bool:  # as ExternalTarget does with #shared=1
        return self.shared and may_have_shed(self.config, down_for, closes)

    def shed(self, session_id: str) -> None:
        """Shed the session as the server does when another worker's session waits for room."""
        proto = self.server.proto
        proto._shed(proto.sessions[session_id], trio.current_time())
        self.server._dispatch()


def machine(shared: bool, mutants=()):
    base = machine_class(MachineOptions(mutants=frozenset(mutants)))

    class Worker(base):
        def build_target(self, seed):
            return SeenFromOutside(self.options, seed, shared)

    return Worker()


def run(program, shared: bool, mutants=(), chunks=TEXT):
    state = machine(shared, mutants)
    try:
        first = state.boot(seed=0, chunks=chunks, context=1)
        program(state, first)
        state.invariants_hold()
    finally:
        state.teardown()  # settles: everything delivered or reset as the resumes said
    return state


def shed_now(state, session: int = 0) -> None:
    async def shed():
        state.target.shed(state.handles[session].session_id)

    state.run(shed)


def cut_while_connected(state, first):
    """Stalled while others waited for room: cut with 1013. It held only a context item
    (the boot's data was acked), so the server ends it: the resume says session_expired."""
    state.advance(seconds=0.2)
    state.set_context(stream=first, value=5)
    shed_now(state)
    state.advance(seconds=0.5)


def shed_while_cut_off(state, first):
    """The client heard nothing for longer than evict_grace (its downlink partitioned, data
    on the way), while others waited for room: whatever the 1013 met, the data is evicted
    and the resume reports the stream lost."""
    state.degrade(fault=Partition(direction="s2c"))
    state.emit(stream=first, chunks=TEXT)
    state.advance(seconds=EVICT_GRACE + 0.1)
    shed_now(state)
    state.heal()
    state.advance(seconds=0.1)


def cut_after_the_client_got_it_all(state, first):
    """Cut with 1013 while its data was on a slow downlink: the client gets every evicted
    item, but the stream's app was stopped, so the resume must still report it lost (the
    server used to say `recovered`, and the next emit on it went unanswered)."""
    state.pause_consumer(stream=first)
    state.degrade(fault=Latency(direction="s2c", seconds=0.3))
    state.emit(stream=first, chunks=TEXT)
    shed_now(state)
    state.advance(seconds=1.0)
    state.heal()
    state.resume_consumers()
    state.emit(stream=first, chunks=TEXT)


PROGRAMS = [cut_while_connected, shed_while_cut_off, cut_after_the_client_got_it_all]


@pytest.mark.parametrize("program", PROGRAMS)
def test_a_shared_server_may_shed_a_session_and_one_worker_accepts_it(program):
    state = run(program, shared=True)
    stats = state.target.server.stats()
    assert stats["shed_sessions"] == 1, stats  # it really was shed ...
    assert state.handles[0].resumes >= 1  # ... and its resume reported it (the reset the model allowed)
    if program is not shed_while_cut_off:
        assert stats["cut_sessions"] == 1 and CloseCode.TRY_AGAIN_LATER in state.handles[0].closes


@pytest.mark.parametrize("program", PROGRAMS)
def test_without_being_told_it_is_shared_a_shed_session_is_a_failure(program):
    """One worker alone on a server: nobody else made pressure, so no reset is excused."""
    with pytest.raises(InvariantViolation, match=NOT_ALLOWED):
        run(program, shared=False)


def shed_with_its_1013_dropped(state, first):
    """Cut with 1013 while the network removed close frames (DropCloseFrame): the client
    never sees the 1013, gives the connection up on dead_after (4008) and is back within
    0.02 s, well inside the 0.1 s an outage needs; the server evicted when it cut."""
    state.pause_consumer(stream=first)
    state.degrade(fault=DropCloseFrame(direction="s2c"))
    state.emit(stream=first, chunks=TEXT)
    shed_now(state)
    state.advance(seconds=1.0)
    state.heal()
    state.resume_consumers()


def shed_with_its_1013_held(state, first):
    """The same with the 1013 held (DelayCloseFrame) past the client's dead_after: it gave
    up before the close arrived."""
    state.pause_consumer(stream=first)
    state.degrade(fault=DelayCloseFrame(direction="both", seconds=1.0))
    state.emit(stream=first, chunks=TEXT)
    shed_now(state)
    state.advance(seconds=1.0)
    state.heal()
    state.resume_consumers()


@pytest.mark.parametrize("program", [shed_with_its_1013_dropped, shed_with_its_1013_held])
def test_a_shed_whose_1013_the_network_kept_from_the_client_is_allowed_when_shared(program):
    """Session 11's gap: no 1013 seen and an outage under 0.1 s read as a failure. The
    machine knows its own network withheld the server's close frames (shared.WITHHELD)."""
    state = run(program, shared=True)
    stats = state.target.server.stats()
    assert stats["shed_sessions"] == 1 and stats["cut_sessions"] == 1, stats
    closes = state.handles[0].closes
    assert CloseCode.TRY_AGAIN_LATER not in closes and WITHHELD in closes, closes
    with pytest.raises(InvariantViolation, match=NOT_ALLOWED):  # one worker alone: still a failure
        run(program, shared=False)


def drop_before_anything_arrived(state, first):
    state.drop(session=0, fault=Abort())
    state.advance(seconds=0.1)


@pytest.mark.parametrize("shared", [False, True])
def test_a_server_that_resets_for_no_reason_is_caught_shared_or_not(shared):
    """``empty_resume_is_new`` replaces a session whose client received nothing yet, after
    a drop the client noticed at once: no 1013, no outage near evict_grace."""
    run(drop_before_anything_arrived, shared=shared, chunks=[])  # the correct server passes
    with pytest.raises(InvariantViolation, match=NOT_ALLOWED):
        run(drop_before_anything_arrived, shared=shared, mutants=["empty_resume_is_new"], chunks=[])


def test_what_a_client_saw_explains_a_shed():
    client = REAL_TIME_CONFIG  # the server may have noticed a loss dead_after + close_timeout (0.9 s) earlier
    lag = client.dead_after + client.close_timeout
    assert may_have_shed(client, 0.0, [CloseCode.TRY_AGAIN_LATER])
    assert may_have_shed(client, 0.0, [None, 1013])
    assert not may_have_shed(client, 0.0, [1006, CloseCode.PEER_DEAD])
    assert not may_have_shed(client, EVICT_GRACE - lag - 0.01, [1006])
    assert may_have_shed(client, EVICT_GRACE - lag, [1006])


def test_fuzz_workers_mark_a_ws_target_shared():
    """In the target URL, the mark reaches the machine's options, every reproducer (which
    replays with the same allowance) and the example database's namespace."""
    from statemodel.fuzz.config import FuzzConfig
    from statemodel.fuzz.runner import options_dict

    config = FuzzConfig(target="ws://h:1/x", transport="tcp", workers=4)
    assert config.target == "ws://h:1/x#shared=1" and options_dict(config)["target"] == config.target
    assert FuzzConfig(target="ws://h:1/x", transport="tcp", workers=1).target == "ws://h:1/x"
    assert FuzzConfig(target="wss://h/#expiry_after=5", transport="tcp", workers=2).target == \
        "wss://h/#expiry_after=5&shared=1"
    assert FuzzConfig(target="ws://h/#shared=0", transport="tcp", workers=2).target == "ws://h/#shared=0"
    assert FuzzConfig(target="WSS://h/", transport="tcp", workers=2).target == "WSS://h/#shared=1"
    assert FuzzConfig(workers=4).target == "reference"  # every worker has its own reference server
    assert shared_url(shared_url("ws://h/")) == "ws://h/#shared=1"


@pytest.fixture
def factories():
    """A user's module of target factories, as ``--target module:factory`` names them."""
    import sys
    import types

    module = types.ModuleType("statemodel_test_shared_factories")
    module.shared = lambda options, seed: SeenFromOutside(options, seed, shared=True)

    class Plain(SeenFromOutside):  # knows nothing of other clients: no may_have_shed at all
        may_have_shed = None

    module.alone = lambda options, seed: Plain(options, seed, shared=False)
    sys.modules[module.__name__] = module
    yield module.__name__
    del sys.modules[module.__name__]


@pytest.mark.parametrize("program", [cut_while_connected, shed_with_its_1013_dropped])
def test_a_factory_target_answers_may_have_shed_itself(factories, program):
    """``fuzz --workers N`` marks only URLs (a factory spec has no fragment to carry the flag):
    a ``module:factory`` target whose server others share implements ``may_have_shed``
    (docs/TARGETS.md), and the machine asks it through the factory wrapper. One that does
    not have it excuses nothing."""
    from statemodel.fuzz.config import FuzzConfig

    def through(factory: str):
        base = machine_class(MachineOptions(target=f"{factories}:{factory}"))
        state = base()
        try:
            first = state.boot(seed=0, chunks=TEXT, context=1)
            assert type(state.target).__name__ == "FactoryTarget"
            program(state, first)
            state.invariants_hold()
        finally:
            state.teardown()
        return state

    assert FuzzConfig(target=f"{factories}:shared", workers=4).target == f"{factories}:shared"
    assert through("shared").target.server.stats()["shed_sessions"] == 1
    with pytest.raises(InvariantViolation, match=NOT_ALLOWED):
        through("alone")


def test_starvation_long_before_a_drop_does_not_excuse_a_reset():
    """On a loaded host shared mode still catches a server that resets for no reason. The
    host (a fake meter on virtual time) kept the run off the CPU for 5 s early in the
    connection; 1.7 s after that, a drop the client noticed at once: session 11 credited all 5 s (any reset after any
    drop passed); only starvation while the client was noticing the loss counts now
    (shared.StarvationLog)."""
    from statemodel.target.shared import StarvationLog

    def program(state, first):
        state.advance(seconds=5.0)
        state.advance(seconds=1.0)
        state.advance(seconds=1.0)  # the host ran us for more than notice_lag (0.9 s) since
        state.drop(session=0, fault=Abort())
        state.advance(seconds=0.1)

    def run_starved(mutants):
        state = machine(True, mutants)
        try:
            state.boot(seed=0, chunks=[], context=None)  # the client receives nothing: the mutant's case
            start_at = state.run(_now) + 0.3  # starved 0.3-5.3 s into the connection
            state.stalled = lambda: min(max(trio.current_time() - start_at, 0.0), 5.0)
            state.handles[0].up_stall = 0.0
            state.starvation = StarvationLog(state.stalled)

            async def start():
                state.nursery.start_soon(state.starvation.run)

            state.run(start)
            program(state, None)
            state.invariants_hold()
            return state
        finally:
            state.teardown()

    with pytest.raises(InvariantViolation, match=NOT_ALLOWED):
        run_starved(["empty_resume_is_new"])
    assert run_starved(()).handles[0].late_by == 0.0  # the correct server passes, nothing credited


async def _now():
    return trio.current_time()


def test_a_client_without_a_config_gets_the_whole_connections_credit():
    """A factory target's client need only have the Client API, not its ``config``: with no
    dead_after to bound the window, the credit is all starvation since it connected (the
    looser, never the falser, verdict), where reading ``client.config`` crashed the watcher."""
    from statemodel.machine.stream_machine import SessionHandle
    from statemodel.target.shared import StarvationLog

    state = machine(True)
    try:
        state.stalled = lambda: 3.0
        state.starvation = StarvationLog(state.stalled)
        assert state._late_by(SessionHandle(0, client=object(), up_stall=1.0)) == 2.0
    finally:
        state.teardown()
