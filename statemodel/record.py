"""Recording of one state-machine run: steps, lane events, model state, the violated invariant.

A recording is what reports, `statemodel replay` and the HTML timeline are built from, and
its canonical-JSON digest is how two runs are compared ("same seed => same trace").
It holds protocol-level facts only (never masked WebSocket bytes), and floats are rounded,
so the digest is stable across processes.

Conventions for ``event(t, lane, kind, detail)``:
- ``lane`` is ``client:N``, ``net`` or ``server:N``;
- ``kind == "fault"``: ``detail`` is the fault's repr (``Drop(kind='rst')``) or a dict with a
  ``"fault"`` key; the fault *kind* counted by progress and summaries is its class name;
- ``kind == "recovery"``: ``detail`` is a dict with ``"seconds"`` (virtual time from heal to
  recovered); progress shows the slowest one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import Counter
from typing import Any, ClassVar, Iterator

__all__ = ["Recorder", "Collector", "canonical", "fault_kind"]


def _normalise(value: Any) -> Any:
    """JSON-safe, deterministic form: floats rounded to 1e-9, unknown objects by repr."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_normalise(v) for v in value)  # never depend on set order
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    return repr(value)


def canonical(value: Any) -> str:
    """Canonical JSON text (sorted keys, compact separators) used for every digest."""
    return json.dumps(_normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def fault_kind(detail: Any) -> str:
    """The kind of a fault event: the fault's class name taken from its repr or dict."""
    if isinstance(detail, dict):
        detail = detail.get("fault", detail.get("kind", "?"))
    text = str(detail)
    return text.split("(", 1)[0].strip() or "?"


class Recorder:
    """Collects what one machine instance did; ``Recorder.last`` is the newest instance.

    After a Hypothesis failure the final replay is the shrunk program, so ``Recorder.last``
    then holds the shrunk run.
    """

    last: ClassVar["Recorder | None"] = None
    _collectors: ClassVar[list["Collector"]] = []

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self.initial: dict[str, Any] = {"events": [], "state": None}
        self.violated: dict[str, Any] | None = None
        for collector in Recorder._collectors:
            collector._started(self)
        Recorder.last = self

    def _current(self) -> dict[str, Any]:
        return self.steps[-1] if self.steps else self.initial

    def step(self, rule: str, args: dict[str, str] | None = None) -> None:
        """Begin a step: the rule name and its arguments as reprs."""
        self.steps.append({"rule": rule, "args": dict(args or {}), "events": [], "state": None})

    def event(self, t: float, lane: str, kind: str, detail: Any = None) -> None:
        """Something seen on a lane at virtual time ``t`` (frame, fault, status, drop...)."""
        self._current()["events"].append(
            {"t": _normalise(float(t)), "lane": lane, "kind": kind, "detail": _normalise(detail)}
        )

    def state(self, snapshot: dict[str, Any]) -> None:
        """Model state after the current step."""
        self._current()["state"] = _normalise(snapshot)

    def violation(self, invariant: str, expected: Any, actual: Any) -> None:
        """The invariant that failed, with what the model expected and what was observed."""
        self.violated = {
            "invariant": invariant,
            "expected": _normalise(expected),
            "actual": _normalise(actual),
            "step": len(self.steps),
        }

    def to_json(self) -> dict[str, Any]:
        return {"initial": self.initial, "steps": self.steps, "violation": self.violated}

    def digest(self) -> str:
        """sha256 of the canonical JSON: the ``trace_digest`` unit of reports."""
        return hashlib.sha256(canonical(self.to_json()).encode()).hexdigest()

    def events(self) -> Iterator[dict[str, Any]]:
        yield from self.initial["events"]
        for step in self.steps:
            yield from step["events"]

    @classmethod
    @contextlib.contextmanager
    def collecting(cls) -> Iterator["Collector"]:
        """Fold every recording started inside the block into a running digest and counts."""
        collector = Collector()
        cls._collectors.append(collector)
        try:
            yield collector
        finally:
            cls._collectors.remove(collector)
            collector.flush()

    @classmethod
    @contextlib.contextmanager
    def paused(cls) -> Iterator[None]:
        """Runs inside this block (e.g. re-running a reproducer) are not collected."""
        saved, cls._collectors = cls._collectors, []
        try:
            yield
        finally:
            cls._collectors = saved


class Collector:
    """Running totals over many recordings, in the order they were executed.

    A recording is folded in when the next one starts (it is finished by then) or on
    ``flush()``, so memory stays bounded however long a fuzz run lasts.
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._pending: Recorder | None = None
        self.examples = 0
        self.steps = 0
        self.faults: Counter[str] = Counter()
        self.slowest_recovery: float | None = None
        self.listener = None  # called with the collector after each recording is folded

    def _started(self, recorder: Recorder) -> None:
        self.flush()
        self._pending = recorder

    def flush(self) -> None:
        rec, self._pending = self._pending, None
        if rec is None:
            return
        self._hash.update(rec.digest().encode() + b"\n")
        self.examples += 1
        self.steps += len(rec.steps)
        for ev in rec.events():
            if ev["kind"] == "fault":
                self.faults[fault_kind(ev["detail"])] += 1
            elif ev["kind"] == "recovery" and isinstance(ev["detail"], dict):
                seconds = ev["detail"].get("seconds")
                if isinstance(seconds, (int, float)):
                    if self.slowest_recovery is None or seconds > self.slowest_recovery:
                        self.slowest_recovery = float(seconds)
        if self.listener is not None:
            self.listener(self)

    def digest(self) -> str:
        """Digest of every folded recording, in order (pending ones are not included)."""
        return self._hash.hexdigest()

    def snapshot(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "steps": self.steps,
            "faults": dict(sorted(self.faults.items())),
            "slowest_recovery": self.slowest_recovery,
        }
