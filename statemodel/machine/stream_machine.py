"""StreamMachine: Hypothesis drives a resumable stream through faults; the model judges every step.

Each rule does one thing (connect, open a stream, send a command, inject a fault, heal,
restart the server, let time pass), then lets the simulated world run for a short,
fixed slice of virtual time. Observations (chunks, outcomes, status events) flow from
background consumer tasks into the pure model, which raises on the first violation;
invariants re-raise it after the step so the failing step is the one that caused it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import random
import sys
from dataclasses import dataclass, field
from typing import Any, ClassVar

import trio
import trio.testing
from hypothesis import event as hypothesis_event, strategies as st, target as hypothesis_target
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import Bundle, consumes, initialize, invariant, multiple, precondition, rule

from statemodel import timers
from statemodel.bridge import TrioStateMachine
from statemodel.machine.edge import OPEN_AHEAD, TICK, resume_at
from statemodel.machine.logwatch import TracebackWatch
from statemodel.machine.options import MachineOptions
from statemodel.machine.rogue import FORGED_TOKEN_CODE, SUPERSEDED_CODE, forge_resume, take_over
from statemodel.model import InvariantViolation, Model
from statemodel.net import faults as F
from statemodel.stream.client import Connected, Disconnected, Reconnecting, Resumed
from statemodel.stream.errors import CloseCode, EndOfStream, SessionClosed, StreamError, StreamReset
from statemodel.stream.frames import Frame, encode
from statemodel.target import make_target, shared as shared_server, stall
from statemodel.target.quiet import quiet_or
from statemodel.strategies.faults import degrade_faults, drop_faults
from statemodel.strategies.payloads import burst_specs, chunk_specs
from statemodel.target.reference import BASE_LATENCY

MAX_SESSIONS = 3
MAX_STREAMS_PER_SESSION = 4
SESSION = st.integers(0, MAX_SESSIONS - 1)  # a session argument: see StreamMachine._session
# Argument values are one choice each: their content only has to survive a JSON round trip
# and be told apart, and every drawn character would be one more choice to shrink.
CONTEXT_VALUES = st.sampled_from([0, 1, -10, "", "v", "ünï", "😀", "a\x00b"])  # session context values (JSON)
ECHO_DATA = st.sampled_from(["", "hi", "é\u0301", "👩\u200d💻", "\x00\ufeff\u2028", "</script>", "x" * 20])
# Virtual seconds the world runs after every rule: between one and two one-way link latencies
# (reference.BASE_LATENCY, 5 ms), so after a rule its request has arrived and the answer is
# in flight, and a drop in the very next rule lands on it (replay bugs live there). With 1 ms
# steps the end_not_replayed mutant needed 5+ filler steps between `end` and `drop`.
STEP = 0.007


CONNECT_WAIT = 1.0  # virtual seconds `connect` waits for the first session
REAL_FAULTED_CONNECT_WAIT = 0.1  # real seconds, while a fault is in force (tcp, netns)
SETTLE_POLL = 0.02  # how often settle looks at the clients' context (which moves with no event the machine sees)
REAL_POLL = 0.005  # how often waits on the real clock (tcp, netns) look again: every waited ms is paid for
# Taking a client offline on purpose (``offline=True`` arguments): drop its connection, then
# act once the client noticed and before its reconnect completes (a few link latencies).
OFFLINE_WAIT = 0.25  # seconds to wait for the client to notice (or to resume again)
OFFLINE_POLL = 0.0005  # on the real clock; virtual time wakes at the first moment it holds (timers.wait_until)
REPLAY_BYTES_PER_SECOND = 200_000  # take_over(during_replay=True): a downlink slow enough to catch a replay
REDELIVERED_KEY = "statemodel:redelivered"  # the context key a re-delivered ctx copy carries
# redeliver copies an item the receiver already has: first let what is in flight arrive and be
# acknowledged (ack_interval 50 ms by default), so there usually is an *older* item to copy.
REDELIVER_WAIT = 0.1
# emit(drop=True) with a message longer than this many fragments (+1): the drop lands after
# about this many fragments reached the client on a downlink slowed to REPLAY_BYTES_PER_SECOND.
MID_MESSAGE_FRAGMENTS = 3
REAL_MID_MESSAGE_WAIT = 0.25  # real seconds: at most this long before that drop (a faster downlink)


def redelivered_copy(to: str, sid: int, seq: int) -> Frame:
    """A copy of item ``seq`` of stream ``sid`` bound for the ``to`` end ("client" or
    "server"), which already has it. Receivers drop it by its seq alone (PROTOCOL.md §4), so
    its content is a marker: a receiver that accepts it shows it as content nobody sent (a
    chunk, an echo of the marker, a context key)."""
    marker = f"statemodel: re-delivered copy of {to}-bound item {sid}:{seq}"
    if sid == 0:
        return Frame("ctx", {"s": 0, "q": seq, "key": REDELIVERED_KEY, "value": marker})
    if to == "client":
        return Frame("data", {"s": sid, "q": seq, "fin": True, "k": "t"}, marker.encode())
    command = json.dumps({"op": "echo", "data": marker}).encode()  # the client sends commands as bytes
    if seq == 1:
        return Frame("open", {"s": sid, "q": 1, "k": "b"}, command)
    return Frame("data", {"s": sid, "q": seq, "fin": True, "k": "b"}, command)


async def _current_time() -> float:
    return trio.current_time()


async def pass_time(end: float, poll: float, done=lambda: False, each=lambda: None) -> None:
    """Sleep in turns of at most ``poll`` until ``end`` or ``done()``, calling ``each()`` after
    every turn. The clock is read once a turn: on the real clock a second read can already be
    past ``end``, and a negative ``trio.sleep`` is a ValueError (found by the 1,000-example tcp run)."""
    while (left := end - trio.current_time()) > 0 and not done():
        await timers.sleep(min(poll, left))
        each()


def event(label: str) -> None:
    """Hypothesis statistics label; a no-op when a printed program is run as plain Python."""
    if currently_in_test_context():
        hypothesis_event(label)


def recorded(fn):
    """Record the rule as a step: its name and arguments (reprs), then what it did."""

    @functools.wraps(fn)
    def step(self, **kwargs):
        if self.recorder is not None:
            self.recorder.step(fn.__name__, {k: repr(v) for k, v in kwargs.items()})
        self.last_rule = fn.__name__
        try:
            return fn(self, **kwargs)
        except InvariantViolation as exc:
            if fn.__name__ in BUNDLE_RULES or not self._defer(exc):
                raise
            return None
        finally:
            # The step's network events, frames and the model's state after it: recorded here,
            # not in Hypothesis' check_invariants, so a printed program run as plain Python (with
            # or without its invariants_hold() lines) records what the run under Hypothesis did.
            if self.recorder is not None and self.model is not None:
                self.recorder.sync()
                self.recorder.state(self.model.snapshot())

    return step


# Rules whose result goes into a bundle: a violation they raise is raised at once (returning
# nothing would change the bundle, and with it later draws).
BUNDLE_RULES = frozenset({"boot", "open_stream"})


def not_again(name: str):
    """Precondition for a costly rule that finds nothing new when repeated back to back (a
    second restart, outage, forged resume, take-over or settle in a row). Swarm testing often enables
    only a rule or two for a whole example; this turns those examples from 20 server
    restarts in a row into quick discards."""
    return precondition(lambda self: self.last_rule != name)


def status_tuple(status) -> tuple:
    """A client status event as a plain tuple the model's grammar reads."""
    if isinstance(status, Connected):
        return ("connected",)
    if isinstance(status, Disconnected):
        return ("disconnected", status.reason)
    if isinstance(status, Reconnecting):
        return ("reconnecting", status.attempt)
    if isinstance(status, Resumed):
        return ("resumed", status.outcome, status.reason)
    raise TypeError(f"unknown status event {status!r}")


@dataclass(eq=False)
class SessionHandle:
    """A client session as the machine sees it; prints as `sessions_N` in programs."""

    index: int
    client: Any = None
    link: int | None = None
    streams: list["StreamHandle"] = field(default_factory=list)
    connected: Any = None  # trio.Event: the first session was established
    session_id: str | None = None  # the server's id for the client's current session
    model_session: str | None = None  # the session the model's copy of its state is about
    down_since: float | None = None  # virtual time the client lost its connection
    closes: list[int | None] = field(default_factory=list)  # close code of each lost connection
    down_from: int = 0  # closes[down_from:] are those of the current outage
    up_stall: float = 0.0  # the host's starvation meter (stall.py) when it last connected
    late_by: float = 0.0  # starvation that may have delayed noticing the loss (shared.StarvationLog)
    withheld: bool = False  # a fault removes or holds the server's close frames on this connection
    connects: int = 0  # Connected statuses so far
    epochs: list[str] = field(default_factory=list)  # the server epoch at each Connected (reference client)
    resumes: int = 0  # Resumed statuses so far: messages name the resume ("resume #2 at t=1.234")
    client_keys: list[str] = field(default_factory=list)  # context keys this client set itself
    in_replay: set = field(default_factory=set)  # ("s2c"|"c2s", stream, seq) the last resume replayed
    gate: Any = None  # trio.Event: while set here and not yet fired, the client's dials wait (offline)

    def __repr__(self) -> str:
        return f"SessionHandle({self.index})"


@dataclass(eq=False)
class StreamHandle:
    session: SessionHandle
    index: int
    key: tuple[int, int]
    stream: Any = None
    outbox: Any = None  # trio memory channel: commands go out in order, never blocking a rule
    released: bool = False  # the program ended, failed or cancelled it (consumed from the bundle)
    paused: Any = None  # trio.Event set while the consumer may read (created with the handle)

    def __repr__(self) -> str:
        return f"StreamHandle({self.key[0]}, {self.key[1]})"


class StreamMachine(TrioStateMachine):
    options: ClassVar[MachineOptions] = MachineOptions()
    real_time: ClassVar[bool] = False  # set for tcp/netns transports (see machine_class)
    # A statemodel.conform.wiretap.FrameLog: every connection the machine dials is recorded
    # into it (``statemodel conform`` reports the frames each case exchanged).
    wiretap: ClassVar[Any] = None
    #: Streams a session keeps open at once (the scaling bench raises it to 16).
    max_streams_per_session: ClassVar[int] = MAX_STREAMS_PER_SESSION

    streams = Bundle("streams")

    def __init__(self) -> None:
        super().__init__()
        self.model: Model | None = None
        self.target = None
        self.handles: list[SessionHandle] = []
        self.violations: list[BaseException] = []
        self.context_counter = 0
        self.last_rule: str | None = None
        self.faulted = False  # a drop or degrade was applied since the last heal
        self.closes_withheld = False  # a degrade removes or holds the server's close frames (shared.py)
        self.starvation = None  # shared.StarvationLog on the real clock, for a target with may_have_shed
        self.reached: set[str] = set()  # scenario classes this example reached (coverage.py)
        self._progress: trio.Event | None = None  # set by the observers while settle waits
        self.recorder = None
        self.tracebacks = TracebackWatch().attach()  # the no-unhandled-exception invariant
        if self.options.record:
            from statemodel.record import Recorder

            self.recorder = Recorder()
            Recorder.last = self.recorder

    # ---- lifecycle ------------------------------------------------------------------------
    @initialize(target=streams, seed=st.integers(0, 2**16 - 1), chunks=st.lists(chunk_specs(), max_size=3),
                context=CONTEXT_VALUES)
    @recorded
    def boot(self, seed: int, chunks: list[dict], context=None) -> StreamHandle:
        """Build the network and the target from one seed (every random choice below derives
        from it), connect session 0 and open its first stream, which sets session context
        ``k1 = context`` (unless None) and streams ``chunks``.

        Every example starts with a live session, a stream with data in flight and session
        context, so any reconnect tests replay and context restoration. Left to the rule
        draw, most examples never connected (swarm testing often switches ``connect`` off
        for a whole example) and could find no replay bug at all."""
        self.seed = seed
        self.run(self._boot, seed)
        command = {"op": "emit", "chunks": chunks}
        if context is not None:
            self.context_counter += 1
            command = {"op": "batch", "commands": [
                {"op": "set_context", "key": f"k{self.context_counter}", "value": context}, command]}
        return self._open(self._new_session(), command)

    def build_target(self, seed: int):
        """The target this machine drives (subclasses such as HostileMachine swap in their own)."""
        return make_target(self.options, seed)

    async def _boot(self, seed: int) -> None:
        self.target = self.build_target(seed)
        self.model = Model(expand=self.target.expected_chunks)
        await self.target.start(self.nursery)
        if self.real_time and getattr(self.target, "may_have_shed", None) is not None:
            self.starvation = shared_server.StarvationLog(self.stalled)
            self.nursery.start_soon(self.starvation.run)
        if self.recorder is not None:  # after start: a real-socket target builds its proxy there
            self.recorder.watch(self.target.net)

    async def trio_teardown(self) -> None:
        if self.target is not None:
            await self.target.stop()

    def teardown(self) -> None:
        try:
            if self.model is not None and self.violations and sys.exc_info()[1] is None:
                # Seen but never raised: a printed program run without its invariants_hold()
                # lines, or kept on the real clock (_defer); under Hypothesis on the virtual
                # clock, a violation is raised by the step that saw it.
                self._raise_violation()
            if self.model is not None and not self.violations:
                self._check_settled()
                self.tracebacks.check()
        finally:
            self.tracebacks.detach()
            if currently_in_test_context():
                # Steer Hypothesis' target phase towards programs that reach more scenario classes.
                hypothesis_target(float(len(self.reached)), label="scenario classes reached")
            try:
                super().teardown()
            finally:
                if self.recorder is not None:
                    self.recorder.sync()  # what teardown put on the wire

    # ---- helpers ---------------------------------------------------------------------------
    def _step(self, async_fn, *args):
        """Run one rule's action, then let the world run for STEP virtual seconds."""

        async def job():
            result = await async_fn(*args)
            await self._world_turn()
            return result

        return self.run(job)

    async def _world_turn(self) -> None:
        """STEP for the world after a rule. On the real clock it ends early once the run is
        idle and the target has nothing in flight (target/quiet.py); the sim's is unchanged."""
        if not self.real_time:
            await timers.sleep(STEP)
            return
        in_flight = getattr(self.target, "in_flight", None)
        await quiet_or(STEP, in_flight if in_flight is not None else (lambda: True))

    def stall_meter(self):
        """The host's starvation meter on the real clock (stall.py); None on the sim, whose
        virtual time has none (the rogue peers' waits then keep their plain bound)."""
        return stall.host_stall if self.real_time else None

    def stalled(self) -> float:
        """Seconds the host has kept this run off the CPU (stall.py): real-time bounds exclude it."""
        meter = self.stall_meter()
        return meter() if meter is not None else 0.0

    def _now(self) -> float:
        """The world's time between rules (virtual, or the real trio clock for tcp/netns)."""
        return self.clock.current_time() if self.clock is not None else self.run(_current_time)

    def _violation(self, exc: BaseException) -> None:
        if not self.violations:
            self.violations.append(exc)

    def _defer(self, exc: InvariantViolation) -> bool:
        """On the real clock, keep the first violation and let the program run on: teardown
        raises it. A failure over real sockets can recur a step earlier or later when
        Hypothesis re-runs the example; a run that stopped at another step drew a different
        amount, which Hypothesis takes for inconsistent data generation
        (FlakyStrategyDefinition) and the failure was lost (a 1,000-example tcp run, example
        144). Running every step keeps the draws the program's alone. On the virtual clock a
        failure is raised by the step that saw it (False)."""
        if not self.real_time:
            return False
        if self.recorder is not None and self.recorder.violated is None:
            self.recorder.violation(exc.invariant, exc.expected, exc.actual, exc.where)
        self._violation(exc)
        return True

    def _note(self, lane: str, kind: str, detail: str) -> None:
        if self.recorder is not None:
            self.recorder.event(trio.current_time(), lane, kind, detail)

    # ---- scenario coverage (statemodel/machine/coverage.py) ----------------------------------
    def _reach(self, scenario: str) -> None:
        """The world is in ``scenario`` (one of coverage.SCENARIOS): count it once per example."""
        if scenario in self.reached:
            return
        self.reached.add(scenario)
        event(f"scenario: {scenario}")
        if self.recorder is not None:
            self.recorder.event(trio.current_time(), "net", "scenario", scenario)  # a fact about the world

    @staticmethod
    def _proto(handle: SessionHandle):
        """The reference client's sans-IO core (None for a factory target's own client)."""
        return getattr(handle.client, "proto", None)

    def _server_endpoint(self, session_id: str | None):
        """The reference server's state for a session, where the target runs it in-process
        (read for coverage only: what the server replayed, whether its buffer filled)."""
        server = getattr(self.target, "server", None)
        sessions = getattr(getattr(server, "proto", None), "sessions", None)
        if session_id is None or not isinstance(sessions, dict):
            return None
        s = sessions.get(session_id)
        return None if s is None else s.ep

    def _observe_drop(self, handle: SessionHandle) -> None:
        """A live connection of ``handle`` just dropped: what was in flight?"""
        proto = self._proto(handle)
        if proto is None:
            return
        if proto.ep.buffered_items >= 2:
            self._reach("unacked_ge2_at_drop")
        server = self._server_endpoint(handle.session_id)
        if proto.ep.partials_dropped or (server is not None and (server.partial or server.partials_dropped)):
            self._reach("drop_inside_fragments")  # the client had some fragments of a message

    def _observe_replay(self, handle: SessionHandle) -> None:
        """What the resume that just completed replayed, both ways (the server's side where
        the target shows it)."""
        proto = self._proto(handle)
        replays = []
        if proto is not None:
            replays.append(("c2s", proto.ep.replayed))
        server = self._server_endpoint(handle.session_id)
        if server is not None:
            replays.append(("s2c", server.replayed))
        handle.in_replay = {(d, sid, q) for d, items in replays for sid, q in items}
        for _, items in replays:
            sids = [sid for sid, _ in items]
            if len(sids) > len(set(sids)):
                self._reach("retransmit_non_last")
            if 0 in sids:
                self._reach("context_changed_offline")
            runs = [sid for i, sid in enumerate(sids) if i == 0 or sids[i - 1] != sid]
            if len(runs) > len(set(runs)):
                self._reach("replay_interleaves_streams")

    def _observe_buffers(self) -> None:
        """After every step: did a producer find a replay buffer at its bound?"""
        if "replay_buffer_full" in self.reached:
            return
        for h in self.handles:
            proto = self._proto(h)
            if proto is not None and proto.ep.full_waits:
                self._reach("replay_buffer_full")
                return
        server = getattr(self.target, "server", None)
        sessions = getattr(getattr(server, "proto", None), "sessions", None)
        if isinstance(sessions, dict) and any(s.ep.full_waits for s in sessions.values()):
            self._reach("replay_buffer_full")

    def _observe_size(self, chunk) -> None:
        """A delivered message of exactly k x fragment_size bytes, or one byte either side."""
        if "size_at_fragment_multiple" in self.reached:
            return  # counted once per example: no need to encode another multi-MiB text
        size = getattr(getattr(self.target, "config", None), "fragment_size", None)
        if not size:
            return
        if isinstance(chunk, str):
            if len(chunk) * 4 < size - 1:
                return
            n = len(chunk.encode())
        else:
            n = len(chunk)
        if n >= size - 1 and (n % size in (0, 1, size - 1)):
            self._reach("size_at_fragment_multiple")

    # ---- sessions --------------------------------------------------------------------------
    @precondition(lambda self: self.model is not None and len(self.handles) < MAX_SESSIONS)
    @rule()
    @recorded
    def connect(self) -> None:
        """Another client session (session 1, 2, ...) on the same server."""
        self._new_session()

    def _session(self, index: int) -> SessionHandle:
        """Session arguments are small ints, clamped to the sessions that exist (session 0
        always does), so programs read ``session=0`` and shrink towards it."""
        return self.handles[min(index, len(self.handles) - 1)]

    def _new_session(self) -> SessionHandle:
        handle = SessionHandle(self.model.new_session())
        self.handles.append(handle)
        self._step(self._connect, handle)
        return handle

    async def _connect(self, handle: SessionHandle) -> None:
        async def dial():
            if handle.gate is not None:  # held offline (expire_edge): the attempt stalls and times out
                await handle.gate.wait()
            stream, link = await self.target.dial()
            handle.link = link
            if self.recorder is not None:
                self.recorder.owner(link, f"client:{handle.index}")
            return stream if self.wiretap is None else self.wiretap.wrap(stream, f"client {handle.index}")

        handle.client = self.target.new_client(dial, rng=random.Random(self.seed * 31 + handle.index))
        handle.connected = trio.Event()
        await self.nursery.start(self._run_client, handle)
        # One step is one action: `connect` returns once the session exists (or a degraded
        # network made it give up waiting), so shrunk programs need no filler steps for time.
        # On the real clock a fault in force may hold the handshake for a whole timeout and
        # more: wait briefly then (the session connects once healed), fully on a healthy network.
        wait = REAL_FAULTED_CONNECT_WAIT if self.real_time and self.faulted else CONNECT_WAIT
        await timers.wait_event_until(handle.connected, trio.current_time() + wait)

    async def _run_client(self, handle: SessionHandle, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with handle.client.run():
            self.nursery.start_soon(self._watch_status, handle)
            task_status.started()
            await trio.sleep_forever()

    async def _watch_status(self, handle: SessionHandle) -> None:
        replaced = False  # the last `connected` brought a different session id
        async for status in handle.client.status:
            event_tuple = status_tuple(status)
            self._note(f"client:{handle.index}", "status", str(event_tuple))
            try:
                self._expire_if_long_down(handle)
                self.model.status(handle.index, event_tuple)
                if isinstance(status, Connected):
                    handle.connects += 1
                    handle.connected.set()
                    replaced = handle.session_id is not None and handle.session_id != status.session
                    if handle.session_id is None:
                        self.model.session_started(handle.index, self.target.generation_of(status.session))
                        handle.model_session = status.session
                    handle.session_id = status.session
                    handle.down_since = None
                    handle.up_stall = self.stalled()
                    handle.withheld = self.closes_withheld
                    proto = self._proto(handle)
                    handle.epochs.append(proto.epoch if proto is not None and proto.session == status.session else None)
                elif isinstance(status, Disconnected):
                    handle.closes.append(status.code)
                    if handle.down_since is None:
                        handle.down_since = trio.current_time()
                        handle.down_from = len(handle.closes) - 1
                        handle.late_by = self._late_by(handle)
                        self._observe_drop(handle)
                    if handle.withheld:
                        handle.closes.append(shared_server.WITHHELD)
                elif isinstance(status, Resumed):
                    self._resumed(handle, status, replaced)
            except InvariantViolation as exc:
                self._violation(exc)
            self._moved()

    def _late_by(self, handle: SessionHandle) -> float:
        """Starvation that may have delayed the client's notice of the loss just reported."""
        config = getattr(handle.client, "config", None)  # a factory target's client may have none
        if self.starvation is None or config is None:  # no window to bound it: the whole connection
            return self.stalled() - handle.up_stall
        return self.starvation.credit(trio.current_time(), shared_server.notice_lag(config), handle.up_stall)

    def _resumed(self, handle: SessionHandle, status: Resumed, replaced: bool) -> None:
        """Judge one resume's outcome directly: ``recovered`` only when nothing was lost and
        the session's server epoch did not change; every stream ``lost`` reset by the client."""
        handle.resumes += 1
        name = f"resume #{handle.resumes} at t={trio.current_time():.3f}"
        event(f"resumed: {status.outcome} {status.reason or ''}".strip())
        if status.outcome == "reset":
            generation = self.target.generation_of(handle.session_id) if replaced else None
            lost = () if replaced else self._lost_keys(handle, status.lost)
            self.model.reset_reported(handle.index, status.reason, generation, name, tuple(lost.values()) if lost else (),
                                      owner=handle.session_id)
            handle.model_session = handle.session_id
            proto = self._proto(handle)
            if lost and proto is not None:
                self.model.lost_not_reset(handle.index, {sid: k for sid, k in lost.items() if sid in proto.streams}, name)
        elif replaced:
            self.model.session_replaced_silently(handle.index, status.reason, name)
        else:
            epochs = tuple(handle.epochs[-2:]) if len(handle.epochs) >= 2 and None not in handle.epochs[-2:] else None
            self.model.recovered_reported(handle.index, status.lost, name, epochs,
                                          self.target.generation_of(handle.session_id))
        if not replaced:
            self._observe_replay(handle)

    def _lost_keys(self, handle: SessionHandle, lost: tuple[int, ...]) -> dict[int, tuple[int, int]]:
        """The machine's streams (model keys) behind the stream ids a welcome reported lost."""
        generation = self.model.sessions[handle.index].generation
        out = {}
        for h in handle.streams:
            st_ = self.model.streams[h.key]
            if h.stream is not None and h.stream.stream_id in lost and st_.session_generation == generation:
                out[h.stream.stream_id] = h.key
        return out

    def _expire_if_long_down(self, handle: SessionHandle) -> None:
        """Cut off, a client's session may expire or lose replay data: allow a reset.

        Expiry needs one long outage. Eviction needs only a disconnected moment and an item
        old enough: an item the network kept from the client across several shorter outages
        (partitions while connected in between) may age out in the last one. A reference
        server under pressure may also shed a session (PROTOCOL.md §6): allowed for exactly
        the sessions it reports shedding. A server shared with clients we cannot see (fuzz
        workers against one URL) may shed for their pressure: allowed once this outage
        explains it (``may_have_shed``, target/shared.py; the time the host kept us from
        noticing the loss counts as outage)."""
        if handle.down_since is None:
            return
        now, limit = trio.current_time(), self.target.expiry_after()
        shed = getattr(self.target, "evicted_under_pressure", None)
        shared = getattr(self.target, "may_have_shed", None)
        if (now - handle.down_since >= limit or self.model.undelivered_since(handle.index, now - limit)
                or (shed is not None and handle.session_id is not None and shed(handle.session_id))
                or (shared is not None and shared(now - handle.down_since + handle.late_by,
                                                  handle.closes[handle.down_from:]))):
            self.model.session_expired(handle.index)

    # ---- streams ---------------------------------------------------------------------------
    @precondition(lambda self: self.model is not None)
    @rule(target=streams, session=SESSION, chunks=st.lists(chunk_specs(), max_size=3))
    @recorded
    def open_stream(self, session: int, chunks: list[dict]):
        handle = self._session(session)
        live = sum(1 for h in handle.streams if self._running(h))
        if live >= self.max_streams_per_session:
            # Below any server's max_streams_per_session (the hostile config allows 6), so
            # the model never has to predict a too_many_streams refusal.
            event("open_stream: session at its stream limit")
            return multiple()
        return self._open(handle, {"op": "emit", "chunks": chunks})

    def _open(self, session: SessionHandle, command: dict) -> StreamHandle:
        key = self.model.open_stream(session.index, command, self._now())
        handle = StreamHandle(session, len(session.streams), key)
        # Created here, not when the open completes: pause_consumer and resume_consumers'
        # precondition read it, and on the real clock the open may complete a step later.
        handle.paused = trio.Event()
        handle.paused.set()
        session.streams.append(handle)
        self._step(self._open_stream, handle, command)
        return handle

    async def _open_stream(self, handle: StreamHandle, command: dict) -> None:
        handle.stream = await handle.session.client.open(json.dumps(command).encode())
        send, receive = trio.open_memory_channel(float("inf"))
        handle.outbox = send
        self.nursery.start_soon(self._send_commands, handle, receive)
        self.nursery.start_soon(self._consume, handle)

    async def _send_commands(self, handle: StreamHandle, receive) -> None:
        async for command in receive:
            try:
                if command == "cancel":
                    proto = self._proto(handle.session)
                    if proto is not None and self._live_link(proto) is None:
                        self._reach("cancel_while_offline")
                    await handle.stream.cancel()
                else:
                    await handle.stream.send(json.dumps(command).encode())
            except ValueError as exc:  # the stream already ended (e.g. reset) before we sent
                self._note(f"client:{handle.session.index}", "skipped", f"{command!r}: {exc}")
            except SessionClosed as exc:  # the client gave up: its stream consumer reports that
                self._note(f"client:{handle.session.index}", "skipped", f"{command!r}: {exc}")
                return

    async def _consume(self, handle: StreamHandle) -> None:
        lane = f"client:{handle.session.index}"
        while True:
            await handle.paused.wait()
            try:
                chunk = await handle.stream.receive()
            except EndOfStream:
                outcome = ("end", None)
            except StreamError as exc:
                outcome = ("error", exc.reason)
            except StreamReset as exc:
                outcome = ("reset", exc.reason)
                # The client queues a stream's reset before the status events of the welcome
                # that caused it: let the status watcher judge that resume first, so a wrong
                # reset is reported as the resume that was wrong, not as this stream's outcome.
                await self._statuses_read(handle.session)
            except SessionClosed as exc:
                self._violation(InvariantViolation(
                    "no exception escapes as anything but a clear error",
                    f"session {handle.key[0]} stream {handle.key[1]}",
                    "the client keeps retrying (every close in a run is retryable)",
                    f"the client gave up: {exc}",
                ))
                return
            else:
                self._note(lane, "chunk", f"stream {handle.key[1]}: {len(chunk)} {'chars' if isinstance(chunk, str) else 'bytes'}")
                try:
                    self.model.chunk(handle.key, chunk)
                except InvariantViolation as exc:
                    self._violation(exc)
                    return
                self._moved()
                self._observe_size(chunk)
                continue
            self._note(lane, "outcome", f"stream {handle.key[1]}: {outcome[0]}({outcome[1] or ''})")
            event(f"stream outcome: {outcome[0]}")
            try:
                self.model.terminal(handle.key, *outcome)
            except InvariantViolation as exc:
                self._violation(exc)
            self._moved()
            return

    async def _statuses_read(self, handle: SessionHandle) -> None:
        """Return once the session's status watcher has handled every status event queued
        so far (in virtual time: once every other task is blocked; on the real clock, a
        bounded number of yields)."""
        if self.clock is not None:
            await trio.testing.wait_all_tasks_blocked()
            return
        status = getattr(handle.client, "status", None)
        for _ in range(64):
            if status is None or status.statistics().current_buffer_used == 0:
                break
            await trio.sleep(0)
        await trio.sleep(0)

    def _command(self, handle: StreamHandle, command: dict) -> None:
        self.model.command(handle.key, command, self._now())
        handle.outbox.send_nowait(command)
        self.run(self._world_turn)

    @rule(stream=streams, chunks=st.lists(chunk_specs(), min_size=1, max_size=3), drop=st.booleans())
    @recorded
    def emit(self, stream: StreamHandle, chunks: list[dict], drop: bool = False) -> None:
        """The client asks the server app to stream these chunks (sent exactly once);
        ``drop``: the connection drops while they are in flight (see ``_drop_in_flight``)."""
        if self._skip_closed(stream):
            return
        mid_message = drop and self._mid_message_wait(chunks)
        if mid_message:
            self.run(self._slow_downlink, self._mid_message_rate())
        self._command(stream, {"op": "emit", "chunks": chunks})
        if drop:
            self._drop_in_flight(stream, after=mid_message or 0.0)

    def _replay_bound(self) -> int | None:
        """The replay_max_bytes of the server the target runs with its ``config`` (reference
        targets; ``check_bounds`` sees its buffers). None for a server out of sight (an
        external one: its ``config`` is the client's, and its buffers are not checked)."""
        if getattr(self.target, "server", None) is None:
            return None
        return getattr(getattr(self.target, "config", None), "replay_max_bytes", None)

    @precondition(lambda self: self._replay_bound() is not None)
    @rule(stream=streams, over=st.sampled_from([1, 0]))
    @recorded
    def burst(self, stream: StreamHandle, over: int) -> None:
        """The app answers at once with two messages of replay_max_bytes + ``over`` bytes each
        (``strategies.payloads.burst_specs``): the first fills the session's replay buffer
        and the second must wait for an ack; a producer that does not wait holds ``over``
        bytes more than the bound (``_check_bounds``, after this step, while both are
        unacked). ``over=0`` hits the bound exactly. Drawn chunk sizes overfill the bound only
        by chance: a 30 s no_backpressure hunt saw none in 298 examples (BENCHMARKS.md)."""
        if self._skip_closed(stream):
            return
        self._command(stream, {"op": "emit", "chunks": burst_specs(self._replay_bound(), over)})

    def _mid_message_wait(self, chunks: list[dict]) -> float | None:
        """For ``emit(drop=True)``: when some message of the answer spans more than
        MID_MESSAGE_FRAGMENTS fragments of the target's, how long after the command the drop
        lands in the middle of it on a downlink slowed to REPLAY_BYTES_PER_SECOND: the client
        then holds a few fragments of an unfinished message (and a receiver that acknowledged
        them early has done so). None otherwise: the drop lands on the whole answer in flight."""
        size = getattr(getattr(self.target, "config", None), "fragment_size", None)
        longest = max((c.get("size", c.get("chars", 0)) for c in chunks), default=0)  # a char is >= 1 byte
        if not size or longest <= (MID_MESSAGE_FRAGMENTS + 1) * size:
            return None
        return MID_MESSAGE_FRAGMENTS * size / self._mid_message_rate()

    def _mid_message_rate(self) -> float:
        """The slowed downlink's bytes/s for ``emit(drop=True)``: REPLAY_BYTES_PER_SECOND, or on
        the real clock as fast as lands the drop MID_MESSAGE_FRAGMENTS fragments in within
        REAL_MID_MESSAGE_WAIT (the same place in the message, fewer paid seconds: a ws://
        target's 256 KiB fragments made it a 3.9 s wait, 28% of a ws:// run)."""
        size = getattr(getattr(self.target, "config", None), "fragment_size", None) or 0
        if not self.real_time:
            return REPLAY_BYTES_PER_SECOND
        return max(REPLAY_BYTES_PER_SECOND, MID_MESSAGE_FRAGMENTS * size / REAL_MID_MESSAGE_WAIT)

    async def _slow_downlink(self, rate: float) -> None:
        self.faulted = True  # lifted by the settle that follows the drop
        self._note("net", "fault", f"Bandwidth(s2c, {rate:g})")
        self.target.apply(F.Bandwidth(direction="s2c", bytes_per_second=rate), None)

    @rule(stream=streams, data=ECHO_DATA)
    @recorded
    def echo(self, stream: StreamHandle, data: str) -> None:
        """A client message the server app must see exactly once: it echoes it back."""
        if self._skip_closed(stream):
            return
        self._command(stream, {"op": "echo", "data": data})

    @rule(stream=streams, value=CONTEXT_VALUES)
    @recorded
    def set_context(self, stream: StreamHandle, value) -> None:
        if self._skip_closed(stream):
            return
        self.context_counter += 1
        self._command(stream, {"op": "set_context", "key": f"k{self.context_counter}", "value": value})

    @rule(stream=consumes(streams), drop=st.booleans())
    @recorded
    def end(self, stream: StreamHandle, drop: bool = False) -> None:
        """The app ends the stream; ``drop``: the connection drops while the end is in flight."""
        stream.released = True
        if self._skip_closed(stream):
            return
        self._command(stream, {"op": "end"})
        if drop:
            self._drop_in_flight(stream)

    @rule(stream=consumes(streams), reason=st.sampled_from(["boom", "upstream timeout", "ünïcode"]), drop=st.booleans())
    @recorded
    def fail(self, stream: StreamHandle, reason: str, drop: bool = False) -> None:
        """The server application raises mid-stream: the client must see a sequenced error;
        ``drop``: the connection drops while the error is in flight."""
        stream.released = True
        if self._skip_closed(stream):
            return
        self._command(stream, {"op": "fail", "reason": reason})
        if drop:
            self._drop_in_flight(stream)

    def _drop_in_flight(self, stream: StreamHandle, after: float = 0.0) -> None:
        """Abort the session's connection one step after a command (the command has reached
        the server and its answer is on the wire: STEP), then settle: once the client is back,
        whatever was in flight must have been replayed. The same as the command followed by
        ``drop(fault=Abort())`` and ``settle()``, drawn as one step.

        Those bugs (an end or error not kept for replay, a replay buffer trimmed above its
        bound, in-flight state tied to the connection) need the drop right behind the command
        and the check before anything resets the stream (a restart or a long outage, in
        most 20-step examples): as three rules the pattern was one example in hundreds
        (BENCHMARKS.md, session 8)."""
        if after:
            self.run(timers.sleep, after)
        self._step(self._cut, stream.session)
        self._judge_then_settle()

    @rule(stream=consumes(streams), offline=st.booleans())
    @recorded
    def cancel(self, stream: StreamHandle, offline: bool = False) -> None:
        """Cancel the stream; ``offline``: first drop the connection, and cancel before the
        client is back, then settle (the cancel must be queued and delivered after the
        resume; checked before a later restart or outage could end the stream anyway, as
        ``_drop_in_flight`` does)."""
        stream.released = True
        if self._skip_closed(stream):
            return
        if offline:
            self.run(self._go_offline, stream.session)
        self.model.cancel(stream.key, self._now())
        stream.outbox.send_nowait("cancel")
        self.run(self._world_turn)
        if offline:
            self._judge_then_settle()

    @precondition(lambda self: self.model is not None)
    @rule(session=SESSION, value=CONTEXT_VALUES, overwrite=st.booleans(), offline=st.booleans())
    @recorded
    def client_set_context(self, session: int, value, overwrite: bool = False, offline: bool = False) -> None:
        """The client application sets session context itself (PROTOCOL.md §8: ctx items
        flow both ways). ``overwrite``: its own last key again, so order matters;
        ``offline``: first drop the connection, and set it before the client is back."""
        handle = self._session(session)
        if handle.client is None:
            return
        if offline:
            self.run(self._go_offline, handle)
        if overwrite and handle.client_keys:
            key = handle.client_keys[-1]
        else:
            self.context_counter += 1
            key = f"c{self.context_counter}"
            handle.client_keys.append(key)
        self._step(self._client_set_context, handle, key, value)

    async def _client_set_context(self, handle: SessionHandle, key: str, value) -> None:
        proto = self._proto(handle)
        live = proto is None or self._live_link(proto) is not None
        # A welcome may have replaced the session before the model heard of it (its Resumed
        # status, not its Connected, moves the model on): the key then belongs to the new
        # incarnation (no checkpoint between this and the set).
        pending = proto is not None and handle.model_session is not None and proto.session != handle.model_session
        self.model.client_context(handle.index, key, value, pending, owner=proto.session if pending else None)
        self._reach("client_context_online" if live else "client_context_offline")
        if not live:
            self._reach("context_changed_offline")
        try:
            await handle.client.set_context(key, value)
        except SessionClosed:
            pass  # the client gave up: its stream consumers report that violation

    @precondition(lambda self: self.model is not None)
    @rule(session=SESSION)
    @recorded
    def interleave_then_drop(self, session: int) -> None:
        """Each live stream of the session gets a message, twice round (A, B, A, B), and the
        connection drops before the server acknowledges them: the resume must replay them in
        their original order across streams (PROTOCOL.md §7.4), each app seeing each once.
        A session with fewer than two live streams first opens one."""
        handle = self._session(session)
        if handle.client is None:
            return
        live = self._live_handles(handle)
        if self.real_time:
            # What the program did decides whether a stream is opened (see _running): which
            # streams are live on the wire is timing, and a stream more or less here changes
            # later preconditions (restart's live streams, open_stream's limit), so Hypothesis
            # replaying the example would draw differently (FlakyStrategyDefinition, found by
            # a 1,000-example tcp run) and the failure could not be shrunk.
            running = sum(1 for h in handle.streams if self._running(h))
            wanted = running < 2 and running < self.max_streams_per_session
        else:
            wanted = len(live) < 2 and len(live) + sum(
                1 for h in handle.streams if self.model.streams[h.key].outcome is None) < self.max_streams_per_session
        if wanted:
            self._open(handle, {"op": "emit", "chunks": []})
            live = self._live_handles(handle)
        if len(live) < 2:
            event("interleave_then_drop: fewer than two live streams")
            return
        now = self._now()
        for round_ in range(2):
            for h in live[:3]:
                command = {"op": "echo", "data": f"interleaved {round_}"}
                self.model.command(h.key, command, now)
                h.outbox.send_nowait(command)
        self._step(self._drop_soon, handle)

    async def _drop_soon(self, handle: SessionHandle) -> None:
        """Let queued commands reach the wire (not yet the server), then drop the connection."""
        await timers.sleep(0.001)
        if handle.link is not None:
            await self._cut(handle)

    def _live_handles(self, handle: SessionHandle) -> list[StreamHandle]:
        """The session's streams that still take commands (their app runs, their handle is current)."""
        return [h for h in handle.streams if h.stream is not None and h.stream._live()
                and self.model.streams[h.key].open_for_commands]

    @precondition(lambda self: self.model is not None)
    @rule(session=SESSION, to=st.sampled_from(["client", "server"]), back=st.integers(1, 3))
    @recorded
    def redeliver(self, session: int, to: str, back: int) -> None:
        """A while later, a copy of an item the receiver already has arrives again on the live
        connection, ``back`` items before the newest it has (a relay replaying its buffer; a
        peer that resends from its last ack instead of the resume position). Receivers drop
        every seq at or below their last (PROTOCOL.md §4), whatever the copy holds."""
        handle = self._session(session)
        proto = self._proto(handle)
        if proto is None or self._live_link(proto) is None:
            event("redeliver: no live connection")
            return
        self._step(self._redeliver, handle, to, back)

    async def _redeliver(self, handle: SessionHandle, to: str, back: int) -> None:
        proto = self._proto(handle)
        await self._wait_for_older(handle, to)
        last_of = self._positions(handle, to)
        if max(last_of.values(), default=0) < 2:
            # Nothing older than the latest item to copy yet: one more command on a live stream
            # gives both directions a second item (the command; two chunks back).
            live = self._live_handles(handle)
            if live:
                command = {"op": "emit", "chunks": [{"kind": "json", "value": "before a re-delivery"}] * 2}
                self.model.command(live[0].key, command, trio.current_time())
                live[0].outbox.send_nowait(command)
                await self._wait_for_older(handle, to)
                last_of = self._positions(handle, to)
        link = self._live_link(proto)
        if link is None:
            return
        candidates = [(q, -sid) for sid, q in last_of.items() if q >= 1]
        if not candidates:
            event(f"redeliver: nothing the {to} has yet")
            return
        last, sid = max(candidates)
        sid = -sid
        seq = max(1, last - back)
        frame = redelivered_copy(to, sid, seq)
        self._note("net", "redeliver", f"{to}-bound copy of item {sid}:{seq} (its last is {last})")
        if seq < last:
            self._reach(f"older_item_to_{to}")
        if to == "client":
            handle.client._on_message(encode(frame), trio.current_time())
        else:
            link.send(frame)
            handle.client._changed.notify()
            await timers.sleep(STEP)  # a server that accepted the copy answers within this step

    async def _wait_for_older(self, handle: SessionHandle, to: str) -> None:
        """REDELIVER_WAIT for what is in flight to arrive and be acknowledged. On the real
        clock, where every waited ms is paid for, only until the ``to`` end has an item older
        than its newest (a position >= 2), which is what the wait is for: most redeliver
        steps find one at once (the fixed wait was 9% of a tcp run, 19% of a ws:// run)."""
        end = trio.current_time() + REDELIVER_WAIT
        if not self.real_time:
            await timers.sleep(REDELIVER_WAIT)
            return
        # Nor longer than something is still on its way that could make one: 41 of 89 waits
        # of a 30-example tcp run ran the whole REDELIVER_WAIT, 24 now (4.8 -> 2.9 s).
        await timers.wait_until(lambda: max(self._positions(handle, to).values(), default=0) >= 2
                                or not self._more_may_come(handle, to), end, REAL_POLL)

    def _more_may_come(self, handle: SessionHandle, to: str) -> bool:
        """Whether a position of ``_positions(handle, to)`` may still rise with no new command:
        the client's items the server has yet to acknowledge, or what the server still owes
        the client (chunks, a terminal, context it set)."""
        proto = self._proto(handle)
        if to == "server":
            live = {h.stream.stream_id for h in self._live_handles(handle)}
            return any(out.next_seq - 1 > out.acked for sid, out in proto.ep.out.items() if sid == 0 or sid in live)
        if not self.model.context_settled(handle.index, handle.client.context):
            return True
        owed = (self.model.streams[h.key] for h in handle.streams)
        return any(st_.pending or (st_.terminal_requested and st_.outcome is None) for st_ in owed)

    def _positions(self, handle: SessionHandle, to: str) -> dict[int, int]:
        """Per stream, the newest item the ``to`` end provably has: what the client received
        (streams it still reads, and stream 0), or what the server acknowledged (streams whose
        app still takes commands, and stream 0)."""
        proto = self._proto(handle)
        if to == "client":
            return {sid: q for sid, q in proto.ep.recv.items() if sid == 0 or sid in proto.streams}
        live = {h.stream.stream_id for h in self._live_handles(handle)}
        return {sid: st_.acked for sid, st_ in proto.ep.out.items() if sid == 0 or sid in live}

    async def _go_offline(self, handle: SessionHandle) -> None:
        """Drop the client's live connection and return once the client noticed, before its
        reconnect completes: what the caller does next happens while it is offline."""
        proto = self._proto(handle)
        if proto is None or handle.link is None or self._live_link(proto) is None:
            return
        await self._cut(handle)
        await timers.wait_until(lambda: self._live_link(proto) is None, trio.current_time() + OFFLINE_WAIT, OFFLINE_POLL)

    async def _replay_slowly(self, handle: SessionHandle, done) -> None:
        """``_drop_until`` with the downlink capped at REPLAY_BYTES_PER_SECOND."""
        self.target.apply(F.Bandwidth(direction="s2c", bytes_per_second=REPLAY_BYTES_PER_SECOND), None)
        await self._drop_until(handle, done)

    async def _drop_until(self, handle: SessionHandle, done) -> None:
        """Drop the client's connection, then wait (bounded) until ``done()``."""
        proto = self._proto(handle)
        if proto is None or handle.link is None:
            return
        await self._cut(handle)
        await timers.wait_until(done, trio.current_time() + OFFLINE_WAIT, OFFLINE_POLL)

    def _live_streams(self) -> bool:
        """Some stream is still running, so a server restart has something to lose."""
        return any(self._running(h) for s in self.handles for h in s.streams)

    def _running(self, stream: StreamHandle) -> bool:
        """The stream has not ended. On the real clock, what the *program* did decides (not
        released by end/fail/cancel): a precondition or bundle that read the network's timing
        would draw differently when Hypothesis replays an example (FlakyStrategyDefinition),
        and no failure found over real sockets could be shrunk."""
        if self.real_time:
            return not stream.released
        return self.model.streams[stream.key].outcome is None

    def _skip_closed(self, stream: StreamHandle) -> bool:
        """A stream the server already reset takes no commands; say so in the statistics."""
        st_ = self.model.streams[stream.key]
        if st_.open_for_commands:
            return False
        event("command skipped: stream already ended by a reset")
        return True

    @rule(stream=streams)
    @recorded
    def pause_consumer(self, stream: StreamHandle) -> None:
        """A slow consumer: the application stops reading this stream until resumed."""
        if stream.paused is not None and stream.paused.is_set():
            stream.paused = trio.Event()
        self.run(self._world_turn)

    @precondition(lambda self: any(h.paused is not None and not h.paused.is_set()
                                   for s in self.handles for h in s.streams))
    @rule()
    @recorded
    def resume_consumers(self) -> None:
        """Every paused consumer catches up."""
        for s in self.handles:
            for h in s.streams:
                if h.paused is not None:
                    h.paused.set()
        self.run(self._world_turn)

    # ---- faults ----------------------------------------------------------------------------
    @rule(session=SESSION, fault=drop_faults())
    @recorded
    def drop(self, session: int, fault: F.Fault) -> None:
        event(f"fault: {type(fault).__name__}")
        self._step(self._apply, self._session(session), fault)

    @rule(fault=degrade_faults())
    @recorded
    def degrade(self, fault: F.Fault) -> None:
        """A network-wide condition: applies to every live link and every new one until heal."""
        event(f"fault: {type(fault).__name__}")
        self._step(self._apply, None, fault)

    async def _apply(self, session: SessionHandle | None, fault: F.Fault) -> None:
        """A fault rule's fault (drop, degrade): ``faulted`` until the next heal."""
        self.faulted = True
        await self._cut(session, fault)

    async def _cut(self, session: SessionHandle | None, fault: F.Fault = F.Abort()) -> None:
        """Apply ``fault``: also the one-off Abort a rule such as interleave_then_drop or
        take_over uses when the wire lets it (a live link). On the real clock what the wire
        allowed is timing and must not change ``faulted``: heal's and take_over's preconditions
        read it, so Hypothesis replaying the example would draw differently
        (FlakyStrategyDefinition) and no failure could be shrunk. On the virtual clock it is
        deterministic and counts as a fault (as ``_running`` reads the model there)."""
        if not self.real_time:
            self.faulted = True
        self._note("net", "fault", repr(fault))
        if shared_server.withholds_server_close(fault):  # a 1013 may go unseen (target/shared.py)
            for handle in self.handles if session is None else [session]:
                handle.withheld = True
            self.closes_withheld = self.closes_withheld or session is None
        link = None if session is None else session.link
        if session is not None and link is None:
            self._note("net", "skipped", f"{fault!r}: session {session.index} has no link yet")
        elif not self.target.apply(fault, link):
            self._note("net", "skipped", f"{fault!r}: link {link} already closed")

    @precondition(lambda self: self.faulted)
    @rule()
    @recorded
    def heal(self) -> None:
        self._step(self._heal)

    async def _heal(self) -> None:
        self._note("net", "fault", "Heal()")
        self.target.heal()
        self.faulted = False
        self.closes_withheld = False

    @rule(seconds=st.sampled_from([0.01, 0.1, 1.0, 5.0, 30.0]))
    @recorded
    def advance(self, seconds: float) -> None:
        """Let virtual time pass: heartbeats, acks, timeouts, backoff and expiry fire."""
        self.run(self._advance, min(seconds, self.target.max_advance))

    async def _advance(self, seconds: float) -> None:
        def expire() -> None:
            for handle in self.handles:
                self._expire_if_long_down(handle)

        # real seconds are paid for: with nothing owed and everyone connected, more only sends heartbeats
        await pass_time(trio.current_time() + seconds, REAL_POLL if self.real_time else 1.0,
                        done=lambda: self.real_time and self._unsettled() is None, each=expire)

    @not_again("outage")
    @rule(seconds=st.sampled_from([25.0, 4.0, 45.0]), mid_stream=st.booleans())  # 25 s: past eviction age (sim)
    @recorded
    def outage(self, seconds: float, mid_stream: bool = False) -> None:
        """The whole network goes dark for a while, then heals: long enough, and sessions
        may expire or lose replay data, which the client must hear about as a reset.
        ``mid_stream``: the downlink goes dark first, while a live stream's answer is on its
        way (an emit the machine sends, as ``redeliver`` does): the server holds it unacked
        through the outage, so a long one ages it out and the resume must report it lost."""
        event(f"fault: outage {seconds:g}s")
        self.run(self._outage, min(seconds, self.target.max_advance), mid_stream)

    async def _outage(self, seconds: float, mid_stream: bool = False) -> None:
        live = [h for s in self.handles for h in self._live_handles(s)] if mid_stream else []
        if live:
            fault = F.Partition(direction="s2c")
            self._note("net", "fault", repr(fault))
            self.target.apply(fault, None)
            command = {"op": "emit", "chunks": [{"kind": "json", "value": "before an outage"}]}
            self.model.command(live[0].key, command, trio.current_time())
            live[0].outbox.send_nowait(command)
            await timers.sleep(STEP)  # the command reaches the server, its answer goes nowhere
        fault = F.Partition()
        self._note("net", "fault", repr(fault))
        self.target.apply(fault, None)
        if self.real_time:
            await self._until_noticed(seconds)
        else:
            await self._advance(seconds)
        await self._heal()

    async def _until_noticed(self, seconds: float) -> None:
        """Real time: stay dark until every client that was connected has noticed the outage
        (its dead-peer timer fired), at most ``seconds``; longer changes nothing but the bill
        (a real-time target's sessions never come near expiry within one rule)."""
        watched = [s for s in self.handles if s.client is not None and not self._noticed_loss(s)]
        await pass_time(trio.current_time() + seconds, REAL_POLL, done=lambda: all(self._noticed_loss(s) for s in watched))

    def _noticed_loss(self, session: SessionHandle) -> bool:
        """The client has no working connection: its protocol failed the link (the dead-peer
        timer fired; the close handshake may still be timing out), or it reports none."""
        proto = getattr(session.client, "proto", None)  # a factory target's own client may not expose it
        if proto is not None:
            return self._live_link(proto) is None
        return not self.model.sessions[session.index].status.connected

    @not_again("restart_server")
    @precondition(lambda self: self.target is not None and self.target.can_restart and self._live_streams())
    @rule()
    @recorded
    def restart_server(self) -> None:
        """The server process dies and comes back empty: clients must see reset, never silent loss."""
        self._restart()

    @not_again("restart_during_resume")
    @precondition(lambda self: self.target is not None and self.target.can_restart and self._live_streams()
                  and (self.real_time or any(h.session_id for h in self.handles)))  # timing: see _running
    @rule(session=SESSION)
    @recorded
    def restart_during_resume(self, session: int) -> None:
        """The server dies while this client's resume is in flight: its connection drops, it
        redials, and the restart lands after its hello was sent, before any welcome."""
        handle = self._session(session)
        proto = self._proto(handle)
        if proto is not None and handle.session_id is not None:
            self.run(self._drop_until, handle, lambda: proto.link is not None and not proto.link.ready)
        self._restart()

    def _restart(self) -> None:
        event("fault: server restart")
        for h in self.handles:
            proto = self._proto(h)
            if proto is not None and proto.session is not None and proto.link is not None and not proto.link.ready:
                self._reach("resume_races_restart")
        self.model.server_restarted()
        self._step(self.target.restart_server)

    @not_again("forge_resume")
    @precondition(lambda self: self.real_time or any(h.session_id for h in self.handles))  # timing: see _running
    @rule(session=SESSION)
    @recorded
    def forge_resume(self, session: int) -> None:
        """A rogue peer tries to resume this session with a forged token: it must never get in.

        PROTOCOL.md asks for close code 4003; the code is recorded, but only acceptance fails
        the run, since a degraded network may eat the close frame (the rogue then sees 1006)."""
        session = self._session(session)
        if session.session_id is None:
            event("forge_resume: session not established yet")
            return
        kind, detail = self._step(forge_resume, self._rogue_dial, session.session_id,
                                  self.target.recovery_bound(), self._rogue_request(), self.stall_meter())
        self._note("net", "rogue", f"forged resume of session {session.index}: {kind} {detail}")
        event(f"forge_resume: {kind}")
        if kind == "accepted":
            self._violation(InvariantViolation(
                "forged resume tokens are refused", f"session {session.index}",
                f"close code {FORGED_TOKEN_CODE} (forged token)",
                f"{kind} {detail}",
            ))
        self._raise_violation()

    @not_again("take_over")
    @precondition(lambda self: not self.faulted and (self.real_time or any(h.session_id for h in self.handles)))
    @rule(session=SESSION, during_replay=st.booleans())
    @recorded
    def take_over(self, session: int, during_replay: bool = False) -> None:
        """A second connection resumes this session with its real token and position (the
        client's old connection lingering after a network handover, a second tab). The
        server must fence the client's connection, and fence this one with 4006 once the
        client resumes again (PROTOCOL.md §7.3); nothing may be lost, since the second
        connection never acks. ``during_replay``: the client's connection drops first, and
        the second one arrives just after the client resumed, while its replay is unacked. Only a connection the client had at that moment is judged,
        and not its close code: a half-open link (not healed) or an armed truncation may eat
        the close frame; nor, during_replay, the second connection's 4006 (1006 is accepted: its
        close frame waits behind the replay on the capped downlink). A 4008 (the server ended
        the second connection as a dead peer first: late pongs on a starved host) counts as ended,
        and the client's connection then has the rest of the bound to see its own 4006. On the
        real clock the bound excludes time the host kept the run off the CPU (target/stall.py)."""
        handle = self._session(session)
        proto = getattr(handle.client, "proto", None)  # a factory target's own client may not expose it
        if proto is None or proto.token is None or not self.model.sessions[handle.index].status.connected:
            event("take_over: session not connected")
            return
        resume = {"session": proto.session, "token": proto.token, "epoch": proto.epoch, "recv": dict(proto.ep.recv)}
        if during_replay:
            # The client's connection drops and it resumes; the second connection is the old
            # one, with the position from before the drop, arriving while the client's replay
            # is still unacknowledged (a slow downlink: a whole message is acked at once).
            connects = handle.connects
            self.run(self._replay_slowly, handle, lambda: handle.connects > connects)
        seen = []  # the client's live link and its connects when the server welcomed the second connection

        def on_welcome():
            seen.append((self._live_link(proto), handle.connects))
            if self._replay_unacked(handle):
                self._reach("fencing_during_replay")

        ended = []  # the client's connects when the second connection ended
        before = handle.connects

        def unfenced() -> bool:
            """The client's connection when the second one read its welcome is still open."""
            link = seen[0][0] if seen else None
            return link is not None and proto.link is link and link.close is None

        def both_ways(kind: str) -> bool:
            """The client resumed meanwhile and that fenced the second connection. If the
            second one read its welcome late (a starved loop), the link it saw is already the
            client's next one, open by right: fenced both ways, whatever the order it read them."""
            return kind == "fenced" and ended[0] > before

        async def second_connection():
            bound = self.target.recovery_bound()
            deadline = stall.Deadline(trio.current_time(), bound, self.stalled)
            result = await take_over(self._rogue_dial, resume, bound, on_welcome,
                                     self._rogue_request(), self.stall_meter())
            ended.append(handle.connects)
            # The second connection may end first (4008: a starved host answered the server's
            # pings late) while the client's 4006 is still on its way (behind a replay on the
            # capped downlink, or unread on a starved loop): the client has the rest of the
            # bound to see it. A server that never fences keeps the client's connection open.
            while unfenced() and not both_ways(result[0]) and trio.current_time() < deadline.at():
                await timers.wait_until(lambda: not unfenced(), deadline.at(), REAL_POLL)
            return result

        kind, detail = self._step(second_connection)
        self._note("net", "rogue", f"second connection resumed session {handle.index}: {kind} {detail}")
        event(f"take_over: {kind}")
        if during_replay:
            self.run(self._heal)  # lift the slow downlink (nothing else was in force: precondition)
        if not seen:
            return  # refused or reset (e.g. the server restarted): nothing to fence
        where = f"session {handle.index}"
        link, connects = seen[0]
        if unfenced() and not both_ways(kind):
            self._violation(InvariantViolation(
                "a newer connection fences the older one", where,
                f"the client's connection closed ({SUPERSEDED_CODE}) once a second connection resumed its session",
                f"the client's connection stayed open beside it (the second one ended: {kind} {detail})",
            ))
        elif ended[0] > connects and kind != "fenced" and (kind, detail) != ("closed", CloseCode.PEER_DEAD) \
                and not (during_replay and (kind, detail) == ("closed", 1006)):
            # (Only a resume before the second connection ended, gave up at its bound, had it to
            # fence: a client welcomed a moment later, e.g. in the same wake-up of a starved
            # loop, found nothing to fence. A 400-example tcp run at load 7 failed so.)
            # (4008: the server ended it as a dead peer first, which is what fencing is for. On a
            # starved host the second connection reads the replay before the server's ping and
            # answers late: seed 9202, tcp, --workers 4 at load 7-9, 27 of 27 such "failures".)
            # (during_replay: the capped downlink holds the 4006 behind the second connection's
            # replay; the server's close timeout may end the transport before it arrives, and the
            # second connection sees 1006. It was still ended, which is what fencing is for.)
            self._violation(InvariantViolation(
                "a newer connection fences the older one", where,
                f"the second connection closed with {SUPERSEDED_CODE} once the client resumed again",
                f"{kind} {detail}",
            ))
        self._raise_violation()

    def _replay_unacked(self, handle: SessionHandle) -> bool:
        """Some item the client's last resume replayed (either way) is still unacknowledged."""
        proto = self._proto(handle)
        server = self._server_endpoint(handle.session_id)
        for direction, sid, seq in handle.in_replay:
            ep = proto.ep if direction == "c2s" else server
            st_ = ep.out.get(sid) if ep is not None else None
            if st_ is not None and any(item.seq == seq for item in st_.buf):
                return True
        return False

    @not_again("expire_edge")
    @precondition(lambda self: self.clock is not None and not self.faulted
                  and any(h.session_id for h in self.handles))
    @rule(session=SESSION, deadline=st.sampled_from(["ttl", "age"]), ticks=st.sampled_from([-1, 1, 0]))
    @recorded
    def expire_edge(self, session: int, deadline: str, ticks: int) -> None:
        """The client goes offline and a resume of its session (its real token and position:
        its old connection, say) reaches the server ``ticks`` ms from the session's expiry
        (``ttl``) or from its oldest item's eviction (``age``). One tick before, the session
        and that item must still be there; one tick after the expiry, the session must be gone
        (PROTOCOL.md §6, §9). Then the client comes back and resumes as usual."""
        handle = self._session(session)
        proto = self._proto(handle)
        config = getattr(self.target, "config", None)
        if proto is None or config is None or self._server_endpoint(handle.session_id) is None \
                or self._live_link(proto) is None:
            event("expire_edge: needs a connected session on an in-process reference server")
            return
        resume = {"session": proto.session, "token": proto.token, "epoch": proto.epoch, "recv": dict(proto.ep.recv)}
        handle.gate = trio.Event()
        try:
            verdict = self.run(self._expire_edge, handle, resume, config, deadline, ticks)
        finally:
            handle.gate.set()
            handle.gate = None
        self._note("net", "rogue", f"resume of session {handle.index} at {deadline} deadline {ticks:+d} ms: {verdict}")
        event(f"expire_edge: {verdict}")
        self.run(self._world_turn)
        self._raise_violation()

    async def _expire_edge(self, handle: SessionHandle, resume: dict, config, deadline: str, ticks: int) -> str:
        await self._cut(handle)
        session = self.target.server.proto.sessions.get(handle.session_id)
        await timers.wait_until(lambda: session is None or session.disconnected_at is not None,
                                trio.current_time() + OFFLINE_WAIT, OFFLINE_POLL)
        if session is None or session.disconnected_at is None:
            return "session gone before the probe"
        if deadline == "ttl":
            at = session.disconnected_at + config.session_ttl
        else:
            oldest = min(((st_.buf[0].t, sid) for sid, st_ in session.ep.out.items()
                          if st_.buf and sid != 0 and sid not in session.ep.finished), default=None)
            if oldest is None:
                return "no item to age"
            at, aged_sid = oldest[0] + config.replay_max_age, oldest[1]
        if at - TICK <= trio.current_time() + OPEN_AHEAD:
            return "deadline already (nearly) passed"  # e.g. an item that aged while connected
        one_way = BASE_LATENCY.seconds
        welcome = await resume_at(self._rogue_dial, resume, at + ticks * TICK, one_way, self.target.recovery_bound())
        if welcome is None:
            return "no welcome"
        if abs(trio.current_time() - (at + ticks * TICK + one_way)) <= TICK / 2:
            self._reach("expiry_boundary")
        alive = welcome.get("session") == resume["session"]
        where = f"session {handle.index}, a resume {ticks:+d} ms from its {deadline} deadline (t={at:.3f})"
        if welcome.get("outcome") == "new":
            self._violation(InvariantViolation(
                "a resume is answered recovered or reset", where,
                "outcome recovered or reset (PROTOCOL.md §7.2: 'new' answers a hello without resume)",
                f"outcome new (session {'kept' if alive else 'replaced'})"))
        elif deadline == "ttl" and ticks < 0 and not alive:
            self._violation(InvariantViolation(
                "sessions live for session_ttl after their disconnect", where,
                "the session resumed (same id)", f"{welcome.get('outcome')}({welcome.get('reason')})"))
        elif deadline == "ttl" and ticks > 0 and alive:
            self._violation(InvariantViolation(
                "sessions expire session_ttl after their disconnect", where,
                "reset(session_expired): the session expired a tick ago", f"{welcome.get('outcome')} (same session id)"))
        elif deadline == "age" and ticks < 0 and aged_sid in welcome.get("lost", {}):
            self._violation(InvariantViolation(
                "no eviction before replay_max_age", where,
                f"stream {aged_sid}'s oldest item kept (it is a tick younger than replay_max_age)",
                f"lost {welcome.get('lost')}"))
        return f"{welcome.get('outcome')} {welcome.get('reason') or ''}".strip()

    @staticmethod
    def _live_link(proto):
        """The client's established, not yet failing connection (None while it reconnects)."""
        link = proto.link
        return link if link is not None and link.ready and link.close is None else None

    async def _rogue_dial(self):
        """A connection for a peer the machine plays (forged resume, take-over). It is not on
        the client's network path: where the target offers a way around the client's faults
        (``dial_around``: straight to a real server), it takes it, so a partition meant for
        the client cannot stall it into a false failure (issue 15.3)."""
        around = getattr(self.target, "dial_around", None)
        if around is not None:
            stream = await around()
        else:
            stream, _link = await self.target.dial()
        return stream if self.wiretap is None else self.wiretap.wrap(stream, "second peer")

    def _rogue_request(self) -> tuple[str, str]:
        """(Host header, resource) of a rogue's WebSocket handshake: the target's, if it says."""
        return getattr(self.target, "request", ("statemodel", "/"))

    @not_again("settle")
    @rule()
    @recorded
    def settle(self) -> None:
        """Heal everything, let the system recover, and check that nothing was lost."""
        self._check_settled()

    def _judge_then_settle(self) -> None:
        """For a rule that settles within its own step: the invariants first, as between two
        rules (the settle drains the replay buffers a bound check reads), then the settle."""
        self.invariants_hold()
        self._check_settled()

    def _check_settled(self) -> None:
        for s in self.handles:
            for h in s.streams:
                if h.paused is not None:
                    h.paused.set()
        bound = self.target.recovery_bound()
        self.run(self._settle, bound)
        self._raise_violation()
        contexts = {s.index: dict(s.client.context) for s in self.handles if s.client is not None}
        server_contexts = {}
        for s in self.handles:
            if s.session_id is not None and self.model.sessions[s.index].status.connected:
                view = self.target.session_context(s.session_id)
                if view is not None:
                    server_contexts[s.index] = view
        self.model.check_quiescent(contexts, server_contexts)

    async def _settle(self, bound: float) -> None:
        # A target may heal differently for a settle (Target.settling: the proxy's base latency).
        with getattr(self.target, "settling", contextlib.nullcontext)():
            await self._settle_healed(bound)

    async def _settle_healed(self, bound: float) -> None:
        self._note("net", "fault", "Heal()")
        self.target.heal()
        self.faulted = False
        self.closes_withheld = False
        start = trio.current_time()
        # On the real clock, time a loaded host kept the run off the CPU is not the system's (stall.py).
        deadline = stall.Deadline(start, bound, self.stalled)
        while trio.current_time() < deadline.at():
            waiting_for = self._unsettled()
            if waiting_for is None:
                self._note("net", "recovery", {"seconds": trio.current_time() - start})
                return
            if waiting_for == "context" or (waiting_for == "server context" and self.real_time):
                # Context moves with no event the machine sees: the client's copy, and the
                # server's (a ctx item arriving). On the real clock an event wait for the
                # server's copy ran every such settle to its bound (4.6 s: half of a tcp
                # run's wall time). The sim keeps its event wait (its traces are pinned by
                # the clean runs); there it costs virtual seconds up to the bound.
                await timers.sleep(REAL_POLL if self.real_time else SETTLE_POLL)
                continue
            # Everything else moves only when an observer reports to the model: wake then,
            # not every few virtual milliseconds (a poll was two scheduler passes each).
            self._progress = trio.Event()
            await timers.wait_event_until(self._progress, deadline.at())
            self._progress = None
        credit = deadline.credit()
        for s in self.handles:
            if s.client is not None and not self.model.sessions[s.index].status.connected:
                self._violation(
                    InvariantViolation(
                        "recovery within bound",
                        f"session {s.index}",
                        f"reconnected within {bound:g} {'real' if self.real_time else 'virtual'} seconds of heal"
                        + (f" (+{credit:.2f} s the host kept the run off the CPU)" if credit else ""),
                        f"still {self.model.sessions[s.index].status.state}",
                    )
                )

    def _moved(self) -> None:
        """An observer told the model something (status, chunk, outcome): settle looks again."""
        if self._progress is not None:
            self._progress.set()

    def _unsettled(self) -> str | None:
        """None once everyone is connected with every status event read, every stream
        delivered and ended as asked and context propagated; else what is still awaited."""
        for s in self.handles:
            if s.client is None:
                continue
            if not self.model.sessions[s.index].status.connected:
                return "connection"
            stats = getattr(s.client.status, "statistics", None)
            if stats is not None and stats().current_buffer_used:
                return "status events"  # e.g. a Resumed right behind its Connected
        for st_ in self.model.streams.values():
            if st_.outcome is None and (st_.pending or st_.terminal_requested or st_.must_reset):
                return "streams"  # incl. one a resume ended, whose reset the consumer has yet to read
        for s in self.handles:
            if s.client is not None and not self.model.context_settled(s.index, s.client.context):
                return "context"
            # Context the client set itself is in its own copy at once and reaches the
            # server's later (a ctx item in flight): wait for the server's copy too.
            server_view = self.target.session_context(s.session_id) if s.client is not None and s.session_id else None
            if server_view is not None and not self.model.context_settled(s.index, server_view):
                return "server context"
        return None

    # ---- invariants ------------------------------------------------------------------------
    def _raise_violation(self) -> None:
        if self.violations:
            exc = self.violations[0]
            if self.recorder is not None and self.recorder.violated is None:
                self.recorder.violation(exc.invariant, exc.expected, exc.actual, exc.where)
            raise exc

    def _check_bounds(self) -> None:
        """The target's buffer bounds, given the largest chunk asked for: first with its
        free lower bound, which passes unless buffers are near a bound; a larger message never
        tightens a bound, so only then is the exact figure needed (and its verdict final)."""
        try:
            self.target.check_bounds(self.model.largest.floor)
        except InvariantViolation:
            self.target.check_bounds(self.model.largest_chunk)

    @invariant()
    def invariants_hold(self) -> None:
        """All invariants, after every step (one line per step in printed programs):
        every chunk, outcome and status event so far was allowed; the client's context
        holds nothing nobody set; buffers are within their bounds; nothing logged a
        traceback or a contained error of its own (server, client, trio-websocket)."""
        try:
            self._raise_violation()
            self.tracebacks.check()
            if self.model is None:
                return
            for s in self.handles:
                if s.client is not None:
                    self.model.check_context(s.index, dict(s.client.context))
            self._check_bounds()
            self._observe_buffers()
        except InvariantViolation as exc:
            if self.recorder is not None and self.recorder.violated is None:
                self.recorder.violation(exc.invariant, exc.expected, exc.actual, exc.where)
            if not self._defer(exc):
                raise
