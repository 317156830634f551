"""The adapter interface between the state machine and whatever it tests (README: "Test your own server")."""

from __future__ import annotations

import json
import random
from typing import Any, Awaitable, Callable, Protocol

import trio

from statemodel.net.faults import Fault
from statemodel.stream.testapp import chunk_of


# Timers short enough for a test run (virtual or loopback), shared by the built-in targets.
FAST_TIMERS = dict(
    handshake_timeout=2.0,
    heartbeat_interval=1.0,
    dead_after=3.0,
    send_timeout=3.0,
    close_timeout=1.0,
    backoff_base=0.05,
)


class Target(Protocol):
    """What ``StreamMachine`` drives. Every method is called inside the machine's trio run.

    Optional: ``settling()``, a context manager the machine holds while it settles (it heals
    first, then waits for recovery): the proxied real-time targets heal without their base
    latency there, which only keeps frames in flight across rules. ``in_flight()``: True while
    the network holds bytes for later delivery; on the real clock the machine's slice after a
    rule then ends once the run is idle and nothing is in flight (quiet.py), else it is whole.

    ``may_have_shed(down_for, closes) -> bool``: for a server that clients the machine cannot
    see use too (other fuzz workers, other tenants), whose pressure may shed our sessions
    (PROTOCOL.md §6): may a reset after this outage be such a shed? ``down_for``: seconds the
    client has been without a connection (plus starvation that may have delayed its notice);
    ``closes``: the close codes of the connections lost in the outage, with
    ``shared.WITHHELD`` for one whose server close frames the machine's own network removed
    or held. ``statemodel.target.shared.may_have_shed(client_config, down_for, closes)``
    answers for PROTOCOL.md's timers. A URL target gets it from ``#shared=1`` (which
    ``fuzz --workers N`` adds); a ``module:factory`` target is never marked (the flag lives in
    URLs): if its server is shared, implement this member. Without it, no reset is excused by
    pressure (tests/machine/test_shared_server.py)."""

    can_restart: bool
    max_advance: float  # the longest wait one `advance` rule may take (real-time targets keep it short)

    async def start(self, nursery: trio.Nursery) -> None:
        """Start the server side (and the network) in ``nursery``."""

    async def stop(self) -> None:
        """Stop everything started by ``start``."""

    async def dial(self) -> tuple[trio.abc.Stream, int]:
        """Open one transport connection to the server; return it and its network link id."""

    def new_client(self, dial: Callable[[], Awaitable[trio.abc.Stream]], rng: random.Random) -> Any:
        """A client (``statemodel.stream.client.Client`` API) that reconnects through ``dial``."""

    def apply(self, fault: Fault, link: int | None) -> bool:
        """Inject a fault on one link (or network-wide with ``None``); False if the link is gone."""

    def heal(self) -> None:
        """Lift every degrade, partition and clog."""

    async def restart_server(self) -> None:
        """Kill the server, losing its in-memory state, and start a fresh one."""

    def recovery_bound(self) -> float:
        """Seconds within which every client must be back after ``heal``."""

    def expiry_after(self) -> float:
        """Seconds a client may be disconnected before a reset (expiry, eviction) is allowed."""

    def check_bounds(self, largest_message: int) -> None:
        """Raise ``InvariantViolation`` if buffers exceed their bounds (``largest_message``:
        the biggest chunk asked for so far, which a producer may push whole). A larger
        ``largest_message`` never tightens a bound: the machine first passes a cheap lower
        bound of it, and the exact figure only when that fails."""

    def generation_of(self, session_id: str) -> int:
        """How many server restarts preceded the creation of this session (0 if it cannot restart)."""

    def session_context(self, session_id: str) -> dict | None:
        """The server's view of a session's context, or None where the target cannot show it."""

    def expected_chunks(self, command: dict) -> list[str | bytes]:
        """What the scripted app yields for ``command`` (PROTOCOL.md appendix A)."""


def scripted_chunks(command: dict) -> list[str | bytes]:
    """The scripted app's output for one ``emit`` or ``echo`` command, computed without running it."""
    if command["op"] == "emit":
        return [chunk_of(spec) for spec in command["chunks"]]
    if command["op"] == "echo":
        data = command["data"]
        return [data if isinstance(data, str) else json.dumps(data, sort_keys=True, separators=(",", ":"))]
    return []
