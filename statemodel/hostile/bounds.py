"""Every bound the hostile machine, its tests and the soak hold the server to, in one place.

Each is read from `Config` -- the numbers PROTOCOL.md §9 and docs/SECURITY.md document --
so a test never repeats a limit as a magic number, and a server configured differently is
judged by its own limits. `held` reads what the reference server actually holds (its
internals: only for the reference in-process).
"""

from __future__ import annotations

import math

from statemodel.stream.config import Config


def honest_latency(config: Config) -> float:
    """Seconds an honest session's small request may take while up to
    `misbehaving_sessions` others stop reading (PROTOCOL.md §6, "The fairness bound"): the
    delay they may add (`Config.honest_delay_bound`) plus the request's own time, for which
    one heartbeat interval is allowed (the probe's network adds no latency in the sim)."""
    return config.honest_delay_bound() + config.heartbeat_interval


def soak_latency(config: Config) -> float:
    """The soak's real-time bound for the same probe: twice `honest_latency` (a shared,
    loaded host adds scheduling noise), still below the starvation it must catch -- requests
    waiting until the stalled sessions are cut off at `dead_after` or longer."""
    return 2 * honest_latency(config)


def misbehaving_sessions(config: Config) -> int:
    """How many sessions may stop reading at once under that promise (§6)."""
    return config.fair_stalled_sessions


def partial_bytes(config: Config) -> int:
    """Bytes of unfinished inbound messages one session may hold (§5: `max_message_size`
    covers all of a session's unfinished messages together)."""
    return config.max_message_size


def server_partial_bytes(config: Config) -> int:
    """Bytes of unfinished inbound messages all sessions together may hold (§5)."""
    return config.server_max_partial_bytes


def prehello_connections(config: Config) -> int:
    """Connections the server keeps before their hello (§9; the oldest is dropped beyond)."""
    return config.prehello_max_connections


def prehello_bytes(config: Config) -> int:
    """Bytes all connections before their hello may make the server buffer together (§9):
    one hello-sized WebSocket message each."""
    return config.prehello_max_connections * config.prehello_message_size


def reconnects_within(config: Config, seconds: float) -> int:
    """The most connections a client may open in ``seconds`` against a server that keeps
    failing it right after welcome: the attempts until the backoff reaches its cap, then one
    per shortest capped delay (PROTOCOL.md §11)."""
    ramp = math.ceil(math.log2(max(config.backoff_max / max(config.backoff_base, 1e-9), 1.0))) + 2
    shortest = config.backoff_max * (1.0 - config.backoff_jitter)
    return ramp + math.ceil(seconds / shortest) if shortest > 0 else ramp


def held(server) -> dict[str, int]:
    """What a reference `Server` holds now: its stats plus the bytes of unfinished inbound
    messages (fragments received without their ``fin``), counted from the fragments
    themselves rather than from the server's own accounting, in all and in the largest
    share of one session."""
    stats = dict(server.stats())
    per_session = [_unfinished(s.ep) for s in server.proto.sessions.values()]
    stats["partial_bytes"] = sum(per_session)
    stats["partial_bytes_max_session"] = max(per_session, default=0)
    return stats


def _unfinished(ep) -> int:
    total = 0
    for p in ep.partial.values():
        for part in (p[1] if isinstance(p, tuple) else p.parts) or ():
            total += len(part.encode("utf-8", "surrogatepass")) if isinstance(part, str) else len(part)
    return total
