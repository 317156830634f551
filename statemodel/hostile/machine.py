"""HostileMachine: the honest StreamMachine, plus hostile peers attacking the same server.

Every honest rule, fault, invariant and the settle check come from `StreamMachine`, so
"no honest session loses or duplicates data while hostile peers run" is checked by the same
model after every step. The hostile peers reach the server through a *second* sim network
(`HostileTarget.hostile_net`): the honest side's faults never touch them, so every attack's
close code can be checked exactly, while they still share the server, its session table
and its memory budgets with the honest sessions.
"""

from __future__ import annotations

import functools
import logging
import random
from dataclasses import replace

import trio
from hypothesis import event as hypothesis_event, strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import invariant, precondition, rule

from statemodel.hostile.attacks import ATTACKS, NEVER_ACKS_CHUNK, AttackContext, Limits, Verdict, run_attack
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
#: Attacks that finish within one step; the long ones have rules of their own.
STEP_ATTACKS = tuple(n for n in ATTACKS if n not in ("never_acks", "session_flood"))
MAX_SILENT_PEERS = 2


def event(label: str) -> None:
    """Hypothesis statistics label; a no-op when a printed program runs as plain Python."""
    if currently_in_test_context():
        hypothesis_event(label)


class HostileTarget(ReferenceTarget):
    """The reference target, with tight limits and a second, fault-free network for attackers."""

    def __init__(self, options, seed: int) -> None:
        super().__init__(options, seed)
        self.config = replace(HOSTILE_CONFIG, mutants=frozenset(options.mutants))
        self.hostile_net = SimNetwork(seed + 1, record_bytes=False)

    async def _start_server(self) -> None:
        self.server = Server(script_app, self.config, rng=random.Random(self.seed * 1009 + self.generation))
        scope, stopped = trio.CancelScope(), trio.Event()
        server = self.server

        async def serve(task_status=trio.TASK_STATUS_IGNORED):
            try:
                with scope:
                    async with server, trio.open_nursery() as nursery:
                        await nursery.start(server.serve, self.net.listener())
                        await nursery.start(server.serve, self.hostile_net.listener())
                        task_status.started()
            finally:
                stopped.set()

        self._scope, self._stopped = scope, stopped
        await self._nursery.start(serve)

    def check_bounds(self, largest_message: int) -> None:
        """Hostile peers ask for messages too: a producer may push one of those whole."""
        super().check_bounds(max(largest_message, NEVER_ACKS_CHUNK))

    async def restart_server(self) -> None:
        for link in self.hostile_net.links:
            self.hostile_net.apply(F.Abort(), link)
        await super().restart_server()


class _HandlerCrashes(logging.Handler):
    """The server logs (and survives) a crashing connection handler; the machine fails on it."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class HostileMachine(StreamMachine):
    options = MachineOptions()

    def __init__(self) -> None:
        super().__init__()
        self.verdicts: list[Verdict] = []
        self.silent_peers = 0
        self.crashes = _HandlerCrashes()
        logging.getLogger("statemodel.stream.server").addHandler(self.crashes)

    def build_target(self, seed: int) -> "HostileTarget":
        self.attack_rng = random.Random(seed * 7 + 1)
        return HostileTarget(self.options, seed)

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            logging.getLogger("statemodel.stream.server").removeHandler(self.crashes)

    def _context(self) -> AttackContext:
        return AttackContext(self.target.hostile_net.connect, Limits.of(self.target.config), timeout=5.0,
                             victims=lambda: [h.session_id for h in self.handles if h.session_id],
                             rng=self.attack_rng)

    def _judge(self, verdict: Verdict, generation: int) -> None:
        """A breach always fails; a wrong answer fails unless a server restart cut the attack short."""
        self._note("net", "attack", str(verdict))
        event(f"attack {verdict.attack}: {'ok' if verdict.ok else verdict.observed}")
        if verdict.breach or (not verdict.ok and generation == self.target.generation):
            self._violation(InvariantViolation(
                "hostile input gets its documented answer and breaks nothing", f"attack {verdict.attack}",
                "|".join(map(str, verdict.expected)) or "a documented answer",
                f"{verdict.observed} {verdict.breach or ''} {verdict.detail}".strip()))

    # ---- hostile rules ---------------------------------------------------------------------
    @precondition(lambda self: self.model is not None)
    @rule(name=st.sampled_from(STEP_ATTACKS))
    @recorded
    def attack(self, name: str) -> None:
        """One hostile peer misbehaves once (its own connections, same server)."""
        generation = self.target.generation
        self._judge(self._step(run_attack, name, self._context()), generation)
        self._raise_violation()

    @precondition(lambda self: self.model is not None)
    @rule()
    @recorded
    def session_flood(self) -> None:
        """Open sessions up to max_sessions: the next gets 4009; all are then closed (1000)."""
        generation = self.target.generation
        now = self.target.server.stats()["sessions"]
        self._judge(self._step(functools.partial(run_attack, sessions_now=now), "session_flood", self._context()), generation)
        self._raise_violation()

    @precondition(lambda self: self.model is not None and self.silent_peers < MAX_SILENT_PEERS)
    @rule()
    @recorded
    def silent_reader(self) -> None:
        """A peer asks for megabytes, then never reads or acks; it stays while the run goes on.
        Server memory must stay within its bounds (checked every step) until it is cut off."""
        self.silent_peers += 1
        self.nursery.start_soon(self._silent_reader, self._context(), self.target.generation)
        self.run(trio.sleep, STEP)

    async def _silent_reader(self, ctx: AttackContext, generation: int) -> None:
        try:
            self._judge(await run_attack("never_acks", ctx), generation)
        finally:
            self.silent_peers -= 1

    # ---- invariants ------------------------------------------------------------------------
    @invariant()
    def hostile_invariants(self) -> None:
        """Besides the honest invariants: the server never crashed a handler, and hostile
        connections are released (never more open than honest + silent peers + a few)."""
        if self.crashes.records:
            rec = self.crashes.records[0]
            raise InvariantViolation("no crash", "server", "every connection handled or closed with a code",
                                     f"{rec.getMessage()}: {rec.exc_info[1]!r}" if rec.exc_info else rec.getMessage())
        if self.target is not None and self.target.server is not None:
            stats = self.target.server.stats()
            limit = len(self.handles) + MAX_SILENT_PEERS + 8
            if stats["connections"] > limit:
                raise InvariantViolation("connections released", "server", f"<= {limit} open connections",
                                         str(stats["connections"]))
