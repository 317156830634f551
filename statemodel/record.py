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
  recovered); progress shows the slowest one;
- ``kind == "scenario"``: ``detail`` names a scenario class the run reached
  (``statemodel.machine.coverage``); summaries count the examples that reached each.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import Counter
from typing import Any, ClassVar, Iterator

__all__ = ["Recorder", "Collector", "canonical", "failure_record", "fault_kind", "with_violation"]

#: The invariant an exception that is not an invariant violation breaks (README: no exception
#: escapes as anything but a clear error).
UNHANDLED = "no unhandled exception"
TESTER_ERROR = "tester error"  # not an invariant: Hypothesis or statemodel itself broke (statemodel.blame)


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
        # Set by the fuzz runner (never part of the recording): which kind of run this is
        # ("generate", "shrink", "replay") and whether it failed, for true counts.
        self.kind = "generate"
        self.failed = False
        self.discarded = False
        # Decode the frames on the wire only for recordings someone will read (a report, a
        # replay, a reproducer), not for the examples a fuzz run folds into its counts.
        self.wire = not Recorder._collectors
        self.tap = None  # report.wire.WireTap once watch() saw a network
        self._net = None
        self._trace_seen = 0
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

    def violation(self, invariant: str, expected: Any, actual: Any, where: str | None = None) -> None:
        """The invariant that failed, with what the model expected and what was observed."""
        self.violated = {
            "invariant": invariant,
            "expected": _normalise(expected),
            "actual": _normalise(actual),
            "step": len(self.steps),
        }
        if where is not None:
            self.violated["where"] = where

    # ----- the network: its trace events, and the frames on the wire --------------------
    NET_KINDS = frozenset({"connect", "abort", "close", "eof", "frame", "drop", "hold", "release", "refused"})

    def watch(self, net) -> None:
        """Copy ``net.trace`` into the recording at each :meth:`sync`; when ``wire`` is set,
        also tap its bytes so each protocol frame shows up (``report.wire``)."""
        self._net, self._trace_seen = net, 0
        if self.wire:
            from statemodel.report.wire import WireTap

            self.tap = WireTap()
            net.trace.tap = self.tap

    def owner(self, link: int | None, lane: str) -> None:
        """Link ``link`` was dialled by the client of ``lane`` (its frames start there)."""
        if self.tap is not None and link is not None:
            self.tap.owners[link] = lane

    def sync(self) -> None:
        """Copy the network's new trace events (and decoded frames) into the current step."""
        net = self._net
        if net is None:
            return
        events = net.trace.events
        current = self._current()["events"]
        tap = self.tap
        for t, link, direction, kind, size, detail in events[self._trace_seen:]:
            if kind not in self.NET_KINDS or (kind == "frame" and tap is not None):
                continue  # with the tap, frames are shown decoded
            lane = "net"
            if tap is not None and kind in ("close", "abort") and direction in ("c2s", "s2c"):
                lane = tap.lane(link, "client" if direction == "c2s" else "server")
            text = f"link {link} {direction} {size}B {detail}".strip() if size else f"link {link} {direction} {detail}".strip()
            current.append({"t": _normalise(float(t)), "lane": lane, "kind": kind, "detail": text})
        self._trace_seen = len(events)
        if tap is not None:
            # Frame details are kept by reference: their "arrived" is filled in when read.
            for t, lane, kind, detail in tap.events():
                current.append({"t": _normalise(float(t)), "lane": lane, "kind": kind, "detail": detail})

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


def _where(exc: BaseException) -> str:
    """Where an unexpected exception was raised: ``file.py:function`` of the innermost frame."""
    from statemodel.blame import where

    return where(exc)


def failure_record(exc: BaseException, recorder: "Recorder | None" = None) -> dict[str, Any]:
    """The one structured record every failure gets, whatever raised it:
    ``invariant``, ``where``, ``expected``, ``actual``, ``step`` and the headline ``title``.

    An exception carrying ``invariant/expected/actual`` (the model's ``InvariantViolation``)
    speaks for itself; else the recording's violation (machines that record before raising a
    plain assertion); the tester's own error (Hypothesis', statemodel's: ``blame``) is named
    as such, with ``tester`` saying whose; anything else broke the no-unhandled-exception
    invariant."""
    from statemodel.blame import leaf, possessive, tester_fault

    violated = recorder.violated if recorder is not None else None
    whose = tester_fault(exc)
    if whose is not None:
        exc = leaf(exc)
        lines = str(exc).strip().splitlines()
        rec = {"invariant": TESTER_ERROR, "where": _where(exc), "tester": whose,
               "expected": "the tester runs without an error of its own",
               "actual": f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": "),
               "step": len(recorder.steps) if recorder is not None else None}
        rec["title"] = f"{TESTER_ERROR} ({possessive(whose)} own, not the target's) at {rec['where']}"
        return rec
    if all(hasattr(exc, a) for a in ("invariant", "expected", "actual")):
        rec = {"invariant": str(exc.invariant), "where": str(getattr(exc, "where", "") or ""),
               "expected": _normalise(exc.expected), "actual": _normalise(exc.actual)}
    elif violated is not None:
        rec = {"invariant": str(violated["invariant"]), "where": str(violated.get("where") or ""),
               "expected": violated["expected"], "actual": violated["actual"]}
    else:
        lines = str(exc).strip().splitlines()
        rec = {"invariant": UNHANDLED, "where": _where(exc),
               "expected": "no exception escapes the system under test or the machine",
               "actual": f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")}
    if violated is not None and violated["invariant"] == rec["invariant"]:
        rec["step"] = violated["step"]
    else:
        rec["step"] = len(recorder.steps) if recorder is not None else None
    rec["title"] = f"invariant {rec['invariant']} violated" + (f" at {rec['where']}" if rec["where"] else "")
    return rec


def with_violation(recording: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The recording with its ``violation`` filled from the failure's structured record when
    the machine raised without recording one (e.g. from ``teardown``)."""
    if recording.get("violation") is not None:
        return recording
    return dict(recording, violation={k: record[k] for k in ("invariant", "where", "expected", "actual", "step")})


RUN_KINDS = ("generate", "discarded", "shrink", "replay")


class Collector:
    """Running totals over many recordings, in the order they were executed.

    A recording is folded in when the next one starts (it is finished by then) or on
    ``flush()``, so memory stays bounded however long a fuzz run lasts. Runs are counted
    by kind (``Recorder.kind``): examples Hypothesis generated (and, apart, the ones it
    discarded unfinished, e.g. programs that ran out of choices), runs of the shrinker, and
    replays of known failures. Only generated examples make the digest, faults and recovery
    figures: they are what the seed determines (shrinking stops on a wall-clock budget). ``best_failing_steps`` is the shortest failing shrink run so far.
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._pending: Recorder | None = None
        self.runs: dict[str, int] = dict.fromkeys(RUN_KINDS, 0)
        self.run_steps: dict[str, int] = dict.fromkeys(RUN_KINDS, 0)
        self.faults: Counter[str] = Counter()
        self.scenarios: Counter[str] = Counter()  # examples that reached each scenario class
        self.slowest_recovery: float | None = None
        self.best_failing_steps: int | None = None
        self.listener = None  # called with the collector after each recording is folded

    @property
    def examples(self) -> int:
        return self.runs["generate"]

    @property
    def steps(self) -> int:
        return self.run_steps["generate"]

    def _started(self, recorder: Recorder) -> None:
        self.flush()
        self._pending = recorder

    def flush(self) -> None:
        rec, self._pending = self._pending, None
        if rec is None:
            return
        kind = rec.kind if rec.kind in self.runs else "generate"
        if kind == "generate" and rec.discarded:
            kind = "discarded"
        self.runs[kind] += 1
        self.run_steps[kind] += len(rec.steps)
        if kind == "shrink" and rec.failed:
            if self.best_failing_steps is None or len(rec.steps) < self.best_failing_steps:
                self.best_failing_steps = len(rec.steps)
        if kind in ("generate", "discarded"):
            self._hash.update(rec.digest().encode() + b"\n")
            reached = set()
            for ev in rec.events():
                if ev["kind"] == "fault":
                    self.faults[fault_kind(ev["detail"])] += 1
                elif ev["kind"] == "scenario":
                    reached.add(str(ev["detail"]))
                elif ev["kind"] == "recovery" and isinstance(ev["detail"], dict):
                    seconds = ev["detail"].get("seconds")
                    if isinstance(seconds, (int, float)):
                        if self.slowest_recovery is None or seconds > self.slowest_recovery:
                            self.slowest_recovery = float(seconds)
            if kind == "generate":  # per example, as `examples` counts them
                self.scenarios.update(reached)
        if self.listener is not None:
            self.listener(self)

    def digest(self) -> str:
        """Digest of every folded generated recording, in order (pending ones are not included)."""
        return self._hash.hexdigest()

    def snapshot(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "steps": self.steps,
            "discarded": self.runs["discarded"],
            "all_steps": sum(self.run_steps.values()),  # every step run, shrinking included
            "shrink_runs": self.runs["shrink"],
            "replays": self.runs["replay"],
            "faults": dict(sorted(self.faults.items())),
            "slowest_recovery": self.slowest_recovery,
        }
