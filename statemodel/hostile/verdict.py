"""What every attack and probe shares: the server's limits, the context it runs in, and the
`Verdict` it returns (what PROTOCOL.md documents against what the server did)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

from statemodel.stream.config import Config

from .peer import Dial

DROPPED = "dropped"  # the server closed the transport without a WebSocket close code
TIMEOUT = "timeout"  # nothing happened within the attack's bound
TRANSPORT = "transport_error"  # dial or send failed at the transport level

_DEFAULTS = Config()  # PROTOCOL.md §9: what an external server is assumed to use


@dataclass(frozen=True)
class Limits:
    """What an attack needs to know about the server (defaults: PROTOCOL.md §9)."""

    handshake_timeout: float = _DEFAULTS.handshake_timeout
    dead_after: float = _DEFAULTS.dead_after
    max_frame_size: int = _DEFAULTS.max_frame_size
    ws_max_message_size: int = _DEFAULTS.ws_max_message_size
    max_sessions: int = _DEFAULTS.max_sessions
    max_streams_per_session: int = _DEFAULTS.max_streams_per_session
    max_message_size: int = _DEFAULTS.max_message_size

    @classmethod
    def of(cls, config: Config) -> "Limits":
        return cls(config.handshake_timeout, config.dead_after, config.max_frame_size,
                   config.ws_max_message_size, config.max_sessions, config.max_streams_per_session,
                   config.max_message_size)


@dataclass(frozen=True)
class Verdict:
    attack: str
    expected: tuple[Any, ...]
    observed: Any
    breach: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.breach is None and self.observed in self.expected

    def __str__(self) -> str:
        want = "|".join(map(str, self.expected))
        tail = f" BREACH: {self.breach}" if self.breach else ""
        return f"{self.attack}: expected {want}, observed {self.observed}{tail} {self.detail}".rstrip()


@dataclass
class AttackContext:
    dial: Dial
    limits: Limits = Limits()
    timeout: float = 5.0  # bound on each network await of an attack
    victims: Callable[[], list[str]] = list  # session ids of honest sessions (not secret)
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    #: Told the id of each session an attack leaves stalled (it never reads or acks): whoever
    #: judges fairness counts those against the documented number of stalled sessions.
    stalled: Callable[[str], None] = lambda session: None
