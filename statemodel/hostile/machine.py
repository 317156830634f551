"""HostileMachine: the honest StreamMachine, plus hostile peers attacking the same server.

Every honest rule, fault, invariant and the settle check come from `StreamMachine`, so
"no honest session loses or duplicates data while hostile peers run" is checked by the same
model after every step. The hostile peers reach the server through a *second* sim network
(`HostileTarget.hostile_net`): the honest side's faults never touch them, so every attack's
close code can be checked exactly, while they still share the server, its session table
and its memory budgets with the honest sessions.

Hostile input comes from a grammar (`grammar.py`: frames at every phase, app commands,
resume positions, WebSocket-layer garbage) as well as from the named attacks; resource
attacks (never-reading sessions, partial-message floods, pre-hello floods) run beside.
After every step, besides the honest invariants: the server process is alive (no input
ends it), nothing logged a traceback, memory is within its documented bounds, connections
are released, and an honest probe session on the attackers' network gets its small
requests answered within the documented latency bound (`fairness.LatencyProbe`).
"""

from __future__ import annotations

import functools
import random
from dataclasses import replace

import trio
from hypothesis import event as hypothesis_event, strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import RULE_MARKER, invariant, precondition, rule

from statemodel.hostile import bounds, grammar
from statemodel.hostile.attacks import ATTACKS, NEVER_ACKS_CHUNK, AttackContext, Limits, Verdict, run_attack
from statemodel.hostile.fairness import LatencyProbe
from statemodel.hostile.floods import PREHELLO_KINDS, partial_flood, prehello_flood
from statemodel.hostile.probes import WS_GARBAGE, command_probe, frame_probe, resume_probe, ws_probe
from statemodel.machine.options import MachineOptions
from statemodel.machine.stream_machine import STEP, StreamMachine, recorded
from statemodel.model import InvariantViolation
from statemodel.net import faults as F
from statemodel.net.sim import SimNetwork
from statemodel.stream.server import Server
from statemodel.stream.testapp import script_app
from statemodel.target.reference import SIM_CONFIG, ReferenceTarget

#: Tight limits so the machine reaches every one of them in a few steps.
HOSTILE_CONFIG = replace(SIM_CONFIG, max_sessions=16, max_streams_per_session=6, max_frame_size=64 << 10)
#: Attacks that finish within one step; the long ones and the floods have rules of their own.
STEP_ATTACKS = tuple(n for n in ATTACKS if n not in ("never_acks", "session_flood", "never_reading", "partial_flood")
                     and not n.startswith("prehello_"))


def event(label: str) -> None:
    """Hypothesis statistics label; a no-op when a printed program runs as plain Python."""
    if currently_in_test_context():
        hypothesis_event(label)


async def _named(ctx: AttackContext, name: str, **kwargs) -> Verdict:
    return await run_attack(name, ctx, **kwargs)


class HostileTarget(ReferenceTarget):
    """The reference target, with tight limits and a second, fault-free network for attackers."""

    def __init__(self, options, seed: int) -> None:
        super().__init__(options, seed)
        self.config = replace(HOSTILE_CONFIG, mutants=frozenset(options.mutants))
        self.hostile_net = SimNetwork(seed + 1, record_bytes=False)
        self.crash: BaseException | None = None  # what ended the server's task, if anything did

    async def _start_server(self) -> None:
        self.server = Server(script_app, self.config, rng=random.Random(self.seed * 1009 + self.generation))
        self._servers.append(self.server)
        scope, stopped = trio.CancelScope(), trio.Event()
        server = self.server

        async def serve(task_status=trio.TASK_STATUS_IGNORED):
            try:
                with scope:
                    async with server, trio.open_nursery() as nursery:
                        await nursery.start(server.serve, self.net.listener())
                        await nursery.start(server.serve, self.hostile_net.listener())
                        task_status.started()
            except Exception as exc:  # noqa: BLE001 - a real process would have exited: judged by the machine
                self.crash = exc
            finally:
                stopped.set()

        self._scope, self._stopped = scope, stopped
        await self._nursery.start(serve)

    def check_bounds(self, largest_message: int) -> None:
        """Hostile peers ask for messages too: a producer may push one of those whole. Partial
        inbound messages (fragments without ``fin``) are bounded per session too."""
        super().check_bounds(max(largest_message, NEVER_ACKS_CHUNK))
        held = bounds.held(self.server)
        per_session, server_wide = bounds.partial_bytes(self.config), bounds.server_partial_bytes(self.config)
        if held["partial_bytes_max_session"] > per_session or held["partial_bytes"] > server_wide:
            raise InvariantViolation(
                "memory within bounds", "server",
                f"at most {per_session} bytes of unfinished messages per session, {server_wide} in all",
                f"{held['partial_bytes_max_session']} bytes in one session, {held['partial_bytes']} in all")

    async def restart_server(self) -> None:
        for link in self.hostile_net.links:
            self.hostile_net.apply(F.Abort(), link)
        await super().restart_server()


class HostileMachine(StreamMachine):
    options = MachineOptions()

    def __init__(self) -> None:
        super().__init__()
        self.verdicts: list[Verdict] = []
        self.silent_peers = 0  # never-reading peers still connected
        self.stalled_ids: set[str] = set()  # sessions of silent peers that were cut off
        self.probe: LatencyProbe | None = None

    @classmethod
    def focused(cls, *rules: str) -> type["HostileMachine"]:
        """This machine with only ``rules`` (plus ``boot`` and every invariant): a hunt
        aimed at one class of defect finds and shrinks it in a few examples."""
        names = {name for name in dir(cls) if getattr(getattr(cls, name), RULE_MARKER, None) is not None}
        unknown = set(rules) - names
        if unknown:
            raise ValueError(f"no such rules: {sorted(unknown)}; rules are {sorted(names)}")
        hidden = {name: None for name in names - set(rules)}
        return type(f"{cls.__name__}Only_{'_'.join(rules)}", (cls,), hidden)

    def build_target(self, seed: int) -> "HostileTarget":
        self.attack_rng = random.Random(seed * 7 + 1)
        return HostileTarget(self.options, seed)

    async def _boot(self, seed: int) -> None:
        await super()._boot(seed)
        target = self.target
        self.probe = LatencyProbe(target.hostile_net.connect, target.config, random.Random(seed * 13 + 5),
                                  epoch=lambda: target.generation)
        await self.nursery.start(self.probe.run)

    def _context(self) -> AttackContext:
        return AttackContext(self.target.hostile_net.connect, Limits.of(self.target.config), timeout=5.0,
                             victims=lambda: [h.session_id for h in self.handles if h.session_id],
                             rng=self.attack_rng)

    def _judge(self, verdict: Verdict, generation: int) -> None:
        """A breach always fails; a wrong answer fails unless a server restart cut the attack short."""
        self._note("net", "attack", str(verdict))
        event(f"attack {verdict.attack}: {'ok' if verdict.ok else verdict.observed}")
        self._check_alive()
        if verdict.breach or (not verdict.ok and generation == self.target.generation):
            self._violation(InvariantViolation(
                "hostile input gets its documented answer and breaks nothing", f"attack {verdict.attack}",
                "|".join(map(str, verdict.expected)) or "a documented answer",
                f"{verdict.observed} {verdict.breach or ''} {verdict.detail}".strip()))

    def _check_alive(self) -> None:
        crash = self.target.crash if self.target is not None else None
        if crash is not None:
            self._violation(InvariantViolation(
                "no input ends the server process", "server", "the server keeps serving every session",
                f"its task died: {crash!r}"))

    def _attack(self, fn, *args, **kwargs) -> None:
        """Run ``fn(context, *args, **kwargs)`` as one step and judge its verdict."""
        generation = self.target.generation
        self._judge(self._step(functools.partial(fn, self._context(), *args, **kwargs)), generation)
        self._raise_violation()

    # ---- hostile rules ---------------------------------------------------------------------
    @precondition(lambda self: self.model is not None)
    @rule(name=st.sampled_from(STEP_ATTACKS))
    @recorded
    def attack(self, name: str) -> None:
        """One hostile peer misbehaves once (its own connections, same server)."""
        self._attack(_named, name)

    @precondition(lambda self: self.model is not None)
    @rule(probe=grammar.hostile_frames)
    @recorded
    def hostile_frame(self, probe) -> None:
        """A frame from the grammar at some phase: taken, or a documented close code."""
        phase, frame, ws_ping = probe
        event(f"hostile_frame: {phase} {frame.type}")
        self._attack(frame_probe, phase, frame, ws_ping)

    @precondition(lambda self: self.model is not None)
    @rule(command=grammar.commands)
    @recorded
    def hostile_command(self, command) -> None:
        """An app command from the grammar: its stream ends with end/error, nothing else."""
        self._attack(command_probe, command)

    @precondition(lambda self: self.model is not None)
    @rule(recv=grammar.recv_maps)
    @recorded
    def hostile_resume(self, recv) -> None:
        """A resume of a hostile peer's own session with a drawn ``recv``: refused, it changes nothing."""
        self._attack(resume_probe, recv)

    @precondition(lambda self: self.model is not None)
    @rule(kind=st.sampled_from(sorted(WS_GARBAGE)), phase=st.sampled_from(("established", "pre_hello")))
    @recorded
    def ws_garbage(self, kind: str, phase: str) -> None:
        """WebSocket-layer garbage: the RFC close code, and the session ends."""
        self._attack(ws_probe, kind, phase)

    @precondition(lambda self: self.model is not None)
    @rule(streams=st.sampled_from((1, 4, 16)), per_stream=st.sampled_from((4 << 10, 256 << 10, 4 << 20)))
    @recorded
    def partial_flood(self, streams: int, per_stream: int) -> None:
        """Fragments of one message on each of many streams, never a ``fin``; then gone.
        Whatever the server took must stay within its per-session bound (checked every step)."""
        self._attack(partial_flood, streams, per_stream)

    @precondition(lambda self: self.model is not None)
    @rule(kind=st.sampled_from(PREHELLO_KINDS),
          count=st.sampled_from((8, 64, bounds.prehello_connections(HOSTILE_CONFIG) + 8)))
    @recorded
    def prehello_flood(self, kind: str, count: int) -> None:
        """Many connections that never get to hello at once. Each must be released by the
        handshake timeout (at once if the peer left); the budget, if documented, holds."""
        self._attack(self._prehello, kind, count)

    async def _prehello(self, ctx: AttackContext, kind: str, count: int) -> Verdict:
        """The flood, watching its own links: how many the server holds at once (its
        pre-hello budget), and whether it let go of those whose peer left at once."""
        config, links, most = self.target.config, [], 0

        async def dial():
            stream = await self.target.hostile_net.connect()
            links.append(stream.link)
            return stream

        def held() -> int:  # flood links whose server end is still open
            return sum(1 for link in links if not link.done)

        async def watch():
            nonlocal most
            while True:
                most = max(most, held())
                await trio.sleep(STEP)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            verdict = await prehello_flood(replace(ctx, dial=dial), count, kind)
            if kind == "half_upgrade":  # the peers left: the server must notice, well within the timeout
                await trio.sleep(config.close_timeout)
                if held() and verdict.ok:
                    verdict = replace(verdict, observed="held", detail=(
                        f"{held()} of {count} connections whose peer left after half an upgrade still held "
                        f"{config.close_timeout:g}s later (released only by the {config.handshake_timeout:g}s "
                        f"handshake timeout)"))
            nursery.cancel_scope.cancel()
        budget = bounds.prehello_connections(config)
        if most > budget and verdict.ok:
            verdict = replace(verdict, observed="over_budget", detail=f"{most} pre-hello connections held > budget {budget}")
        return verdict

    @precondition(lambda self: self.model is not None)
    @rule()
    @recorded
    def session_flood(self) -> None:
        """Open sessions up to max_sessions: the next gets 4009; all are then closed (1000)."""
        now = self.target.server.stats()["sessions"]
        self._attack(_named, "session_flood", sessions_now=now)

    @precondition(lambda self: self.model is not None
                  and self._stalled() < bounds.misbehaving_sessions(self.target.config))
    @rule(sessions=st.integers(1, 3))
    @recorded
    def silent_reader(self, sessions: int) -> None:
        """Peers that ask for megabytes, then never read or ack; they stay while the run goes
        on, up to the documented number of stalled sessions at once (their sessions count
        until the server has let go of their data). Server memory must stay within its
        bounds and the honest probe within its latency bound (checked every step) meanwhile."""
        room = bounds.misbehaving_sessions(self.target.config) - self._stalled()
        for _ in range(min(sessions, room)):
            self.silent_peers += 1
            self.nursery.start_soon(self._silent_reader, self._context(), self.target.generation)
        self.run(trio.sleep, STEP)

    def _stalled(self) -> int:
        """Sessions that may have stopped reading now: silent peers (live, or gone while the
        server still holds their data) and, while the honest network is faulted, every
        honest session (a partition stalls its acks). Fairness is promised only while
        there are at most `bounds.misbehaving_sessions` of them (PROTOCOL.md §6)."""
        sessions = self.target.server.proto.sessions
        self.stalled_ids = {sid for sid in self.stalled_ids if sid in sessions and sessions[sid].ep.buffered_items}
        honest = len(self.handles) if self.faulted else sum(
            1 for h in self.handles if not self.model.sessions[h.index].status.connected)
        return self.silent_peers + len(self.stalled_ids) + honest

    async def _silent_reader(self, ctx: AttackContext, generation: int) -> None:
        ids: list[str] = []
        try:
            self._judge(await run_attack("never_acks", replace(ctx, stalled=ids.append)), generation)
        finally:
            self.silent_peers -= 1  # gone: its session counts while the server holds its data
            self.stalled_ids.update(ids)

    # ---- invariants ------------------------------------------------------------------------
    @invariant()
    def hostile_invariants(self) -> None:
        """Besides the honest invariants (no traceback logged among them): the server lives,
        hostile connections are released, and the honest probe's requests are answered
        within the documented latency bound."""
        self._check_alive()
        self._raise_violation()
        if self.target is None or self.target.server is None:
            return
        stats = self.target.server.stats()
        limit = len(self.handles) + bounds.misbehaving_sessions(self.target.config) + 8
        if stats["connections"] > limit:
            raise InvariantViolation("connections released", "server", f"<= {limit} open connections",
                                     str(stats["connections"]))
        if self.probe is not None:
            self._promise_holds()
            self.probe.check(self._now(), bounds.honest_latency(self.target.config))

    def _promise_holds(self) -> None:
        self.probe.promise_holds(self._stalled() <= bounds.misbehaving_sessions(self.target.config))

    async def _cut(self, session, fault=F.Abort()) -> None:
        """A fault may stall honest sessions: the fairness promise may stop holding right now."""
        await super()._cut(session, fault)
        if self.probe is not None:
            self._promise_holds()
