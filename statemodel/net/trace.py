"""Trace of network events: what replay, reports and determinism checks read.

Events are plain tuples ``(t, link, direction, kind, size, detail)`` appended on the
hot path and formatted only when asked. ``digest()`` hashes a canonical encoding of
times, links, directions, kinds, sizes and details -- never raw bytes, because
WebSocket client masking (``os.urandom``) makes wire bytes differ between runs.

Kinds: ``connect``, ``accept``, ``send`` (written by an endpoint), ``deliver``
(scheduled arrival), ``hold`` / ``release`` (clog/partition), ``drop`` (bytes lost),
``frame`` (a WebSocket frame header seen; detail ``"op=<n> len=<n>"``), ``fault``
(detail = the fault's repr), ``eof``, ``close``, ``abort``, ``refused``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, NamedTuple

BYTE_KINDS = frozenset({"send", "deliver", "hold", "release", "drop", "frame"})


class Event(NamedTuple):
    t: float
    link: int | None
    direction: str
    kind: str
    size: int
    detail: str


class Trace:
    """Append-only event log. ``record_bytes=False`` skips byte-level events (send, deliver,
    hold, release, drop, frame) for speed; faults and connection events are kept."""

    def __init__(self, record_bytes: bool = True, limit: int | None = 1_000_000) -> None:
        self.record_bytes = record_bytes
        self.limit = limit
        # Optional ``tap(t, link, direction, "send" | "recv", data)``: every chunk an endpoint
        # writes or reads, for recordings that show the frames (report.wire). None: no cost.
        self.tap = None
        self.events: list[tuple] = []
        self.dropped_events = 0

    def add(self, t: float, link: int | None, direction: str, kind: str, size: int = 0, detail: str = "") -> None:
        if self.limit is not None and len(self.events) >= self.limit:
            self.dropped_events += 1
            return
        self.events.append((t, link, direction, kind, size, detail))

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self):
        return (Event(*e) for e in self.events)

    def clear(self) -> None:
        self.events.clear()
        self.dropped_events = 0

    def of_kind(self, *kinds: str) -> list[Event]:
        return [Event(*e) for e in self.events if e[3] in kinds]

    def canonical(self) -> list[tuple]:
        """Events in a scheduling-independent order: by time, link, direction, keeping
        the order of appends within each (a stable sort), times rounded to 1 ns."""
        rows = [(round(e[0], 9), -1 if e[1] is None else e[1], e[2], e[3], e[4], e[5]) for e in self.events]
        rows.sort(key=lambda r: (r[0], r[1], r[2]))
        return rows

    def to_json(self) -> dict[str, Any]:
        return {
            "fields": ["t", "link", "direction", "kind", "size", "detail"],
            "events": [list(e) for e in self.events],
            "dropped_events": self.dropped_events,
            "digest": self.digest(),
        }

    def digest(self) -> str:
        payload = json.dumps(self.canonical(), separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def render(self, limit: int = 200) -> str:
        """A readable timeline (one line per event) for reports and failure messages."""
        lines = []
        for e in self.events[:limit]:
            link = "-" if e[1] is None else str(e[1])
            size = f" {e[4]}B" if e[4] else ""
            detail = f" {e[5]}" if e[5] else ""
            lines.append(f"{e[0]:10.6f} link {link:>3} {e[2]:<4} {e[3]}{size}{detail}")
        if len(self.events) > limit:
            lines.append(f"... {len(self.events) - limit} more events")
        return "\n".join(lines)
