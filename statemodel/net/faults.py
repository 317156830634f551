"""One fault vocabulary for every network backend (sim, tcp proxy, netns).

Pure Python (no trio): faults are frozen dataclasses so they hash, compare and
``repr`` into eval-able Python -- the repr appears in shrunk Hypothesis step
programs, so it omits fields left at their defaults to stay short.

Directions: ``"c2s"`` is client -> server, ``"s2c"`` server -> client, ``"both"``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

Direction = Literal["c2s", "s2c", "both"]
DIRECTIONS: tuple[str, ...] = ("c2s", "s2c", "both")


def expand(direction: str) -> tuple[str, ...]:
    """The one-way directions a ``Direction`` covers, always in the order c2s, s2c."""
    if direction == "both":
        return ("c2s", "s2c")
    return (direction,)


@dataclass(frozen=True)
class Fault:
    """Base class. ``kind`` groups faults: ``drop`` (one-shot or permanent damage to a
    link), ``degrade`` (lifted by ``Heal``), ``frame`` (frame-aware, lifted by ``Heal``)
    and ``heal``."""

    kind: ClassVar[str] = "fault"

    def __post_init__(self) -> None:
        direction = getattr(self, "direction", "both")
        if direction not in DIRECTIONS:
            raise ValueError(
                f"{type(self).__name__}: direction must be one of {DIRECTIONS}, got {direction!r}"
            )
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if not math.isfinite(value) or value < 0:
                    raise ValueError(
                        f"{type(self).__name__}: {f.name} must be a finite number >= 0, got {value!r}"
                    )

    @property
    def directions(self) -> tuple[str, ...]:
        return expand(getattr(self, "direction", "both"))

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.default is not dataclasses.MISSING and value == f.default:
                continue
            parts.append(f"{f.name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Hypothesis prints rule arguments with its pretty-printer, which would list the
        ``kind`` ClassVar as an argument; print the eval-able ``repr`` instead."""
        printer.text(repr(self))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, the inverse of :func:`fault_from_dict` (control API, traces)."""
        return {"fault": type(self).__name__, "args": dataclasses.asdict(self)}


# --- drops -------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class CleanClose(Fault):
    """Close the link cleanly (FIN both ways): bytes already in flight are delivered,
    then each end reads EOF; later sends fail with a broken-stream error."""

    kind: ClassVar[str] = "drop"


@dataclass(frozen=True, repr=False)
class Abort(Fault):
    """Reset the link (RST): bytes in flight are lost, both ends see an error /
    abrupt EOF (a WebSocket reader reports close code 1006)."""

    kind: ClassVar[str] = "drop"


@dataclass(frozen=True, repr=False)
class TruncateMidFrame(Fault):
    """Deliver only part of the next WebSocket frame in ``direction``, then abort the
    link: the reader is left with half a frame, i.e. an abnormal closure."""

    direction: Direction = "s2c"
    kind: ClassVar[str] = "drop"


@dataclass(frozen=True, repr=False)
class HalfOpen(Fault):
    """Bytes (and FIN) in ``direction`` silently vanish forever on the link while the
    sender keeps succeeding -- only application heartbeats can notice. Not healed."""

    direction: Direction = "s2c"
    kind: ClassVar[str] = "drop"


@dataclass(frozen=True, repr=False)
class DropDuringHandshake(Fault):
    """Arms the *next* link: it is aborted when the server's first bytes (the HTTP
    101 answer) would be delivered, so the WebSocket opening handshake never completes."""

    kind: ClassVar[str] = "drop"


# --- degrade -------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Latency(Fault):
    """Delay every write by ``seconds`` plus uniform jitter in ``[0, jitter]`` drawn
    from the network's seeded RNG. Never reorders bytes within a link."""

    direction: Direction = "both"
    seconds: float = 0.05
    jitter: float = 0.0
    kind: ClassVar[str] = "degrade"


@dataclass(frozen=True, repr=False)
class Bandwidth(Fault):
    """Cap throughput at ``bytes_per_second`` (each write is serialised behind the
    previous one)."""

    direction: Direction = "both"
    bytes_per_second: float = 1_000_000
    kind: ClassVar[str] = "degrade"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bytes_per_second <= 0:
            raise ValueError("Bandwidth: bytes_per_second must be > 0")


@dataclass(frozen=True, repr=False)
class Slice(Fault):
    """Split every write into pieces of at most ``max_bytes`` (the first 64 pieces; the
    rest of a longer write arrives as one more piece); the bytes are unchanged, only the
    reader sees them in small reads."""

    direction: Direction = "both"
    max_bytes: int = 1
    kind: ClassVar[str] = "degrade"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.max_bytes, int) or self.max_bytes < 1:
            raise ValueError(f"Slice: max_bytes must be an int >= 1, got {self.max_bytes!r}")


@dataclass(frozen=True, repr=False)
class Clog(Fault):
    """Hold every byte written on the link's ``direction``; ``Heal`` releases them all,
    in order. Applies to live links only."""

    direction: Direction = "both"
    kind: ClassVar[str] = "degrade"


@dataclass(frozen=True, repr=False)
class Partition(Fault):
    """Nothing flows in ``direction`` (like a real network split under TCP): bytes are
    held and flow after ``Heal`` unless the link is aborted meanwhile. Network-wide
    (``link=None``) it also stalls new connections until healed."""

    direction: Direction = "both"
    kind: ClassVar[str] = "degrade"


@dataclass(frozen=True, repr=False)
class PacketLoss(Fault):
    """Lose packets in ``direction``: at random with ``probability``, or every
    ``every``-th one when ``every`` > 0. On netns this is a real iptables
    ``statistic`` DROP; on sim/tcp, where there are no packets, a lost write waits
    one TCP retransmission timeout (``rto`` seconds) -- what TCP turns loss into."""

    direction: Direction = "both"
    probability: float = 0.1
    every: int = 0
    rto: float = 0.2
    kind: ClassVar[str] = "degrade"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.probability <= 1:
            raise ValueError(f"PacketLoss: probability must be within [0, 1], got {self.probability!r}")
        if not isinstance(self.every, int) or self.every == 1:
            raise ValueError("PacketLoss: every must be an int: 0 (random) or >= 2 (drop every n-th packet)")


@dataclass(frozen=True, repr=False)
class Heal(Fault):
    """Lift every degrade, partition, clog and frame-aware fault on the targeted links
    (drops such as ``HalfOpen`` are permanent)."""

    kind: ClassVar[str] = "heal"


# --- frame-aware ---------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class SplitAtFrameBoundary(Fault):
    """Deliver bytes in pieces cut exactly at every WebSocket frame boundary and once
    inside every frame header -- exercises the reader's reassembly."""

    direction: Direction = "both"
    kind: ClassVar[str] = "frame"


@dataclass(frozen=True, repr=False)
class DropCloseFrame(Fault):
    """Remove WebSocket close frames (opcode 0x8) in ``direction``; the rest flows."""

    direction: Direction = "both"
    kind: ClassVar[str] = "frame"


@dataclass(frozen=True, repr=False)
class DelayCloseFrame(Fault):
    """Hold WebSocket close frames (and, to keep order, what follows) for ``seconds``."""

    direction: Direction = "both"
    seconds: float = 1.0
    kind: ClassVar[str] = "frame"


@dataclass(frozen=True, repr=False)
class SwallowPongs(Fault):
    """Drop WebSocket pong frames (opcode 0xA) in ``direction``. Our protocol uses its
    own heartbeats, so this mostly matters to other servers behind the proxy."""

    direction: Direction = "both"
    kind: ClassVar[str] = "frame"


FAULTS: dict[str, type[Fault]] = {
    cls.__name__: cls
    for cls in (
        CleanClose, Abort, TruncateMidFrame, HalfOpen, DropDuringHandshake,
        Latency, Bandwidth, Slice, Clog, Partition, PacketLoss, Heal,
        SplitAtFrameBoundary, DropCloseFrame, DelayCloseFrame, SwallowPongs,
    )
}


def fault_from_dict(obj: Any) -> Fault:
    """Build a fault from ``{"fault": "Latency", "args": {...}}``; raises ``ValueError``
    with a message naming the problem (unknown fault, bad argument)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("fault"), str):
        raise ValueError('expected an object like {"fault": "Latency", "args": {"seconds": 0.1}}')
    name = obj["fault"]
    cls = FAULTS.get(name)
    if cls is None:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(FAULTS))}")
    args = obj.get("args") or {}
    if not isinstance(args, dict):
        raise ValueError(f"{name}: args must be an object")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(args) - names)
    if unknown:
        raise ValueError(f"{name}: unknown argument(s) {unknown}; accepted: {sorted(names)}")
    return cls(**args)


# --- scenarios -----------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """Apply ``fault`` at ``at`` seconds after the scenario starts, to ``link``
    (None = every live link / network-wide)."""

    at: float
    fault: Fault
    link: int | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.at, (int, float)) and math.isfinite(self.at) and self.at >= 0):
            raise ValueError(f"Step.at must be a finite time >= 0, got {self.at!r}")
        if not isinstance(self.fault, Fault):
            raise ValueError(f"Step.fault must be a Fault, got {self.fault!r}")


@dataclass(frozen=True)
class Scenario:
    """A fault schedule every backend can run (``statemodel.net.scenario.run``):
    the same seeded scenario on sim, tcp and netns."""

    steps: tuple[Step, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(sorted(self.steps, key=lambda s: s.at)))
