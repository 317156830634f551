"""StreamMachine: Hypothesis drives a resumable stream through faults; the model judges every step.

Each rule does one thing (connect, open a stream, send a command, inject a fault, heal,
restart the server, let time pass), then lets the simulated world run for a short,
fixed slice of virtual time. Observations (chunks, outcomes, status events) flow from
background consumer tasks into the pure model, which raises on the first violation;
invariants re-raise it after the step so the failing step is the one that caused it.
"""

from __future__ import annotations

import functools
import json
import random
import sys
from dataclasses import dataclass, field
from typing import Any, ClassVar

import trio
from hypothesis import event as hypothesis_event, strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import Bundle, consumes, initialize, invariant, multiple, precondition, rule

from statemodel.bridge import TrioStateMachine
from statemodel.machine.logwatch import TracebackWatch
from statemodel.machine.options import MachineOptions
from statemodel.machine.rogue import FORGED_TOKEN_CODE, SUPERSEDED_CODE, forge_resume, take_over
from statemodel.model import InvariantViolation, Model
from statemodel.net import faults as F
from statemodel.stream.client import Connected, Disconnected, Reconnecting, Resumed
from statemodel.stream.errors import EndOfStream, SessionClosed, StreamError, StreamReset
from statemodel.target import make_target
from statemodel.strategies.faults import degrade_faults, drop_faults
from statemodel.strategies.payloads import chunk_specs

MAX_SESSIONS = 3
MAX_STREAMS_PER_SESSION = 4
SESSION = st.integers(0, MAX_SESSIONS - 1)  # a session argument: see StreamMachine._session
CONTEXT_VALUES = st.integers(-10, 10) | st.text(max_size=8)  # session context values (JSON)
# Virtual seconds the world runs after every rule: between one and two one-way link latencies
# (reference.BASE_LATENCY, 5 ms), so after a rule its request has arrived and the answer is
# in flight, and a drop in the very next rule lands on it (replay bugs live there). With 1 ms
# steps the end_not_replayed mutant needed 5+ filler steps between `end` and `drop`.
STEP = 0.007


CONNECT_WAIT = 1.0  # virtual seconds `connect` waits for the first session
REAL_FAULTED_CONNECT_WAIT = 0.1  # real seconds, while a fault is in force (tcp, netns)
SETTLE_POLL = 0.02  # how often settle looks at the clients' context (which moves with no event the machine sees)
REAL_POLL = 0.005  # how often waits on the real clock (tcp, netns) look again: every waited ms is paid for


async def _current_time() -> float:
    return trio.current_time()


async def pass_time(end: float, poll: float, done=lambda: False, each=lambda: None) -> None:
    """Sleep in turns of at most ``poll`` until ``end`` or ``done()``, calling ``each()`` after
    every turn. The clock is read once a turn: on the real clock a second read can already be
    past ``end``, and a negative ``trio.sleep`` is a ValueError (found by the 1,000-example tcp run)."""
    while (left := end - trio.current_time()) > 0 and not done():
        await trio.sleep(min(poll, left))
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
        finally:
            # The step's network events, frames and the model's state after it: recorded here,
            # not in Hypothesis' check_invariants, so a printed program run as plain Python (with
            # or without its invariants_hold() lines) records what the run under Hypothesis did.
            if self.recorder is not None and self.model is not None:
                self.recorder.sync()
                self.recorder.state(self.model.snapshot())

    return step


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
    down_since: float | None = None  # virtual time the client lost its connection
    closes: list[int | None] = field(default_factory=list)  # close code of each lost connection
    connects: int = 0  # Connected statuses so far

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
    paused: Any = None  # trio.Event set while the consumer may read

    def __repr__(self) -> str:
        return f"StreamHandle({self.key[0]}, {self.key[1]})"


class StreamMachine(TrioStateMachine):
    options: ClassVar[MachineOptions] = MachineOptions()
    real_time: ClassVar[bool] = False  # set for tcp/netns transports (see machine_class)

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
        if self.recorder is not None:
            self.recorder.watch(self.target.net)
        await self.target.start(self.nursery)

    async def trio_teardown(self) -> None:
        if self.target is not None:
            await self.target.stop()

    def teardown(self) -> None:
        try:
            if self.model is not None and self.violations and sys.exc_info()[1] is None:
                # Seen but never raised: a printed program run without its invariants_hold()
                # lines (under Hypothesis, a violation is raised by the step that saw it).
                self._raise_violation()
            if self.model is not None and not self.violations:
                self._check_settled()
                self.tracebacks.check()
        finally:
            self.tracebacks.detach()
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
            await trio.sleep(STEP)
            return result

        return self.run(job)

    def _now(self) -> float:
        """The world's time between rules (virtual, or the real trio clock for tcp/netns)."""
        return self.clock.current_time() if self.clock is not None else self.run(_current_time)

    def _violation(self, exc: BaseException) -> None:
        if not self.violations:
            self.violations.append(exc)

    def _note(self, lane: str, kind: str, detail: str) -> None:
        if self.recorder is not None:
            self.recorder.event(trio.current_time(), lane, kind, detail)

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
            stream, link = await self.target.dial()
            handle.link = link
            if self.recorder is not None:
                self.recorder.owner(link, f"client:{handle.index}")
            return stream

        handle.client = self.target.new_client(dial, rng=random.Random(self.seed * 31 + handle.index))
        handle.connected = trio.Event()
        await self.nursery.start(self._run_client, handle)
        # One step is one action: `connect` returns once the session exists (or a degraded
        # network made it give up waiting), so shrunk programs need no filler steps for time.
        # On the real clock a fault in force may hold the handshake for a whole timeout and
        # more: wait briefly then (the session connects once healed), fully on a healthy network.
        with trio.move_on_after(REAL_FAULTED_CONNECT_WAIT if self.real_time and self.faulted else CONNECT_WAIT):
            await handle.connected.wait()

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
                    handle.session_id = status.session
                    handle.down_since = None
                elif isinstance(status, Disconnected):
                    handle.closes.append(status.code)
                    if handle.down_since is None:
                        handle.down_since = trio.current_time()
                elif isinstance(status, Resumed):
                    event(f"resumed: {status.outcome} {status.reason or ''}".strip())
                    if status.outcome == "reset":
                        generation = self.target.generation_of(handle.session_id) if replaced else None
                        self.model.reset_reported(handle.index, status.reason, generation)
                    elif replaced:
                        self.model.session_replaced_silently(handle.index, status.reason)
                    else:
                        self.model.recovered_reported(handle.index, status.lost)
            except InvariantViolation as exc:
                self._violation(exc)
            self._moved()

    def _expire_if_long_down(self, handle: SessionHandle) -> None:
        """Cut off, a client's session may expire or lose replay data: allow a reset.

        Expiry needs one long outage. Eviction needs only a disconnected moment and an item
        old enough: an item the network kept from the client across several shorter outages
        (partitions while connected in between) may age out in the last one."""
        if handle.down_since is None:
            return
        now, limit = trio.current_time(), self.target.expiry_after()
        if now - handle.down_since >= limit or self.model.undelivered_since(handle.index, now - limit):
            self.model.session_expired(handle.index)

    # ---- streams ---------------------------------------------------------------------------
    @precondition(lambda self: self.model is not None)
    @rule(target=streams, session=SESSION, chunks=st.lists(chunk_specs(), max_size=3))
    @recorded
    def open_stream(self, session: int, chunks: list[dict]):
        handle = self._session(session)
        live = sum(1 for h in handle.streams if self._running(h))
        if live >= MAX_STREAMS_PER_SESSION:
            # Below any server's max_streams_per_session (the hostile config allows 6), so
            # the model never has to predict a too_many_streams refusal.
            event("open_stream: session at its stream limit")
            return multiple()
        return self._open(handle, {"op": "emit", "chunks": chunks})

    def _open(self, session: SessionHandle, command: dict) -> StreamHandle:
        key = self.model.open_stream(session.index, command, self._now())
        handle = StreamHandle(session, len(session.streams), key)
        session.streams.append(handle)
        self._step(self._open_stream, handle, command)
        return handle

    async def _open_stream(self, handle: StreamHandle, command: dict) -> None:
        handle.stream = await handle.session.client.open(json.dumps(command).encode())
        send, receive = trio.open_memory_channel(float("inf"))
        handle.outbox = send
        handle.paused = trio.Event()
        handle.paused.set()
        self.nursery.start_soon(self._send_commands, handle, receive)
        self.nursery.start_soon(self._consume, handle)

    async def _send_commands(self, handle: StreamHandle, receive) -> None:
        async for command in receive:
            try:
                if command == "cancel":
                    await handle.stream.cancel()
                else:
                    await handle.stream.send(json.dumps(command).encode())
            except ValueError as exc:  # the stream already ended (e.g. reset) before we sent
                self._note(f"client:{handle.session.index}", "skipped", f"{command!r}: {exc}")

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
                continue
            self._note(lane, "outcome", f"stream {handle.key[1]}: {outcome[0]}({outcome[1] or ''})")
            event(f"stream outcome: {outcome[0]}")
            try:
                self.model.terminal(handle.key, *outcome)
            except InvariantViolation as exc:
                self._violation(exc)
            self._moved()
            return

    def _command(self, handle: StreamHandle, command: dict) -> None:
        self.model.command(handle.key, command, self._now())
        handle.outbox.send_nowait(command)
        self.run(trio.sleep, STEP)

    @rule(stream=streams, chunks=st.lists(chunk_specs(), min_size=1, max_size=3))
    @recorded
    def emit(self, stream: StreamHandle, chunks: list[dict]) -> None:
        """The client asks the server app to stream these chunks (sent exactly once)."""
        if self._skip_closed(stream):
            return
        self._command(stream, {"op": "emit", "chunks": chunks})

    @rule(stream=streams, data=st.text(max_size=20))
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

    @rule(stream=consumes(streams))
    @recorded
    def end(self, stream: StreamHandle) -> None:
        stream.released = True
        if self._skip_closed(stream):
            return
        self._command(stream, {"op": "end"})

    @rule(stream=consumes(streams), reason=st.sampled_from(["boom", "upstream timeout", "ünïcode"]))
    @recorded
    def fail(self, stream: StreamHandle, reason: str) -> None:
        """The server application raises mid-stream: the client must see a sequenced error."""
        stream.released = True
        if self._skip_closed(stream):
            return
        self._command(stream, {"op": "fail", "reason": reason})

    @rule(stream=consumes(streams))
    @recorded
    def cancel(self, stream: StreamHandle) -> None:
        stream.released = True
        if self._skip_closed(stream):
            return
        self.model.cancel(stream.key, self._now())
        stream.outbox.send_nowait("cancel")
        self.run(trio.sleep, STEP)

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
        self.run(trio.sleep, STEP)

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
        self.run(trio.sleep, STEP)

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
        self._note("net", "fault", repr(fault))
        self.faulted = True
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
    @rule(seconds=st.sampled_from([25.0, 4.0, 45.0]))  # shrinks towards 25 s: past eviction age (sim)
    @recorded
    def outage(self, seconds: float) -> None:
        """The whole network goes dark for a while, then heals: long enough, and sessions
        may expire or lose replay data, which the client must hear about as a reset."""
        event(f"fault: outage {seconds:g}s")
        self.run(self._outage, min(seconds, self.target.max_advance))

    async def _outage(self, seconds: float) -> None:
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
        event("fault: server restart")
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
                                  self.target.recovery_bound(), self._rogue_request())
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
    @rule(session=SESSION)
    @recorded
    def take_over(self, session: int) -> None:
        """A second connection resumes this session with its real token and position (the
        client's old connection lingering after a network handover, a second tab). The
        server must fence the client's connection, and fence this one with 4006 once the
        client resumes again (PROTOCOL.md §7.3); nothing may be lost, since the second
        connection never acks. Only a connection the client had at that moment is judged,
        and not its close code: a half-open link (not healed) or an armed truncation may eat
        the close frame."""
        handle = self._session(session)
        proto = getattr(handle.client, "proto", None)  # a factory target's own client may not expose it
        if proto is None or proto.token is None or not self.model.sessions[handle.index].status.connected:
            event("take_over: session not connected")
            return
        resume = {"session": proto.session, "token": proto.token, "epoch": proto.epoch, "recv": dict(proto.ep.recv)}
        seen = []  # the client's live link and its connects when the server welcomed the second connection
        kind, detail = self._step(take_over, self._rogue_dial, resume, self.target.recovery_bound(),
                                  lambda: seen.append((self._live_link(proto), handle.connects)),
                                  self._rogue_request())
        self._note("net", "rogue", f"second connection resumed session {handle.index}: {kind} {detail}")
        event(f"take_over: {kind}")
        if not seen:
            return  # refused or reset (e.g. the server restarted): nothing to fence
        where = f"session {handle.index}"
        link, connects = seen[0]
        if link is not None and proto.link is link and link.close is None:
            self._violation(InvariantViolation(
                "a newer connection fences the older one", where,
                f"the client's connection closed ({SUPERSEDED_CODE}) once a second connection resumed its session",
                f"the client's connection stayed open beside it (the second one ended: {kind} {detail})",
            ))
        elif handle.connects > connects and kind != "fenced":
            self._violation(InvariantViolation(
                "a newer connection fences the older one", where,
                f"the second connection closed with {SUPERSEDED_CODE} once the client resumed again",
                f"{kind} {detail}",
            ))
        self._raise_violation()

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
            return await around()
        stream, _link = await self.target.dial()
        return stream

    def _rogue_request(self) -> tuple[str, str]:
        """(Host header, resource) of a rogue's WebSocket handshake: the target's, if it says."""
        return getattr(self.target, "request", ("statemodel", "/"))

    @not_again("settle")
    @rule()
    @recorded
    def settle(self) -> None:
        """Heal everything, let the system recover, and check that nothing was lost."""
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
        self._note("net", "fault", "Heal()")
        self.target.heal()
        self.faulted = False
        start = trio.current_time()
        deadline = start + bound
        while trio.current_time() < deadline:
            waiting_for = self._unsettled()
            if waiting_for is None:
                self._note("net", "recovery", {"seconds": trio.current_time() - start})
                return
            if waiting_for == "context":
                await trio.sleep(REAL_POLL if self.real_time else SETTLE_POLL)
                continue
            # Everything else moves only when an observer reports to the model: wake then,
            # not every few virtual milliseconds (a poll was two scheduler passes each).
            self._progress = trio.Event()
            with trio.move_on_at(deadline):
                await self._progress.wait()
            self._progress = None
        for s in self.handles:
            if s.client is not None and not self.model.sessions[s.index].status.connected:
                self._violation(
                    InvariantViolation(
                        "recovery within bound",
                        f"session {s.index}",
                        f"reconnected within {bound:g} {'real' if self.real_time else 'virtual'} seconds of heal",
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
            if st_.outcome is None and (st_.pending or st_.terminal_requested):
                return "streams"
        for s in self.handles:
            if s.client is not None and not self.model.context_settled(s.index, s.client.context):
                return "context"
        return None

    # ---- invariants ------------------------------------------------------------------------
    def _raise_violation(self) -> None:
        if self.violations:
            exc = self.violations[0]
            if self.recorder is not None and self.recorder.violated is None:
                self.recorder.violation(exc.invariant, exc.expected, exc.actual, exc.where)
            raise exc

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
            self.target.check_bounds(self.model.largest_chunk)
        except InvariantViolation as exc:
            if self.recorder is not None and self.recorder.violated is None:
                self.recorder.violation(exc.invariant, exc.expected, exc.actual, exc.where)
            raise
