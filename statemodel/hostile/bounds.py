"""Every bound the hostile machine, its tests and the soak hold the server to, in one place.

Each is read from `Config` -- the numbers PROTOCOL.md §9 and docs/SECURITY.md document --
so a test never repeats a limit as a magic number, and a server configured differently is
judged by its own limits. `held` reads what the reference server actually holds (its
internals: only for the reference in-process).
"""

from __future__ import annotations

import math
from typing import Any

from statemodel.stream.config import Config


def _documented(config: Config, name: str, fallback: Any) -> Any:
    """A bound from Config, or ``fallback`` while the server's Config has no such field."""
    return getattr(config, name, fallback)


def honest_latency(config: Config) -> float:
    """Seconds an honest session's small request may take while others misbehave (§6)."""
    return _documented(config, "fair_latency", config.heartbeat_interval)


def misbehaving_sessions(config: Config) -> int:
    """How many sessions may misbehave at once (never read, flood) under that promise."""
    return _documented(config, "fair_hostile_sessions", config.server_overdraft_sessions)


def partial_bytes(config: Config) -> int:
    """Bytes of unfinished inbound messages one session may hold on the server."""
    return _documented(config, "max_partial_bytes", config.max_message_size)


def prehello_connections(config: Config) -> int | None:
    """Connections the server keeps before their hello (None: no documented budget)."""
    return _documented(config, "max_prehello_connections", None)


def prehello_bytes(config: Config) -> int:
    """Bytes all connections before their hello may hold together (frames in progress)."""
    return _documented(config, "max_prehello_bytes", config.max_frame_size)


def reconnects_within(config: Config, seconds: float) -> int:
    """The most connections a client may open in ``seconds`` against a server that keeps
    failing it right after welcome: the attempts until the backoff reaches its cap, then one
    per shortest capped delay (PROTOCOL.md §11)."""
    ramp = math.ceil(math.log2(max(config.backoff_max / max(config.backoff_base, 1e-9), 1.0))) + 2
    shortest = config.backoff_max * (1.0 - config.backoff_jitter)
    return ramp + math.ceil(seconds / shortest) if shortest > 0 else ramp


def held(server) -> dict[str, int]:
    """What a reference `Server` holds now: its stats plus the bytes of partial messages
    (fragments received without their ``fin``), the largest share of one session."""
    stats = dict(server.stats())
    per_session = [sum(size for _kind, _parts, size in s.ep.partial.values())
                   for s in server.proto.sessions.values()]
    stats["partial_bytes"] = sum(per_session)
    stats["partial_bytes_max_session"] = max(per_session, default=0)
    return stats
