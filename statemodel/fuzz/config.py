"""Plain, picklable descriptions of a fuzz run and its results (they cross process bounds)."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class FuzzConfig:
    target: str = "reference"
    transport: str = "sim"
    mutants: tuple[str, ...] = ()
    examples: int | None = None  # None: the profile's max_examples (unless duration is set)
    duration: float | None = None  # seconds of wall time; examples then run in batches
    seed: int = 0
    workers: int = 1
    db: str | None = None
    profile: str = "dev"
    machine: str | None = None  # module:callable; None = $STATEMODEL_MACHINE or the default
    batch_examples: int = 100  # examples per batch in --duration mode
    shrink_budget: float | None = 60.0  # wall seconds of shrinking per failure found (None: Hypothesis' own limit)
    # Stop shrinking once this many shrink runs in a row found no failing program with fewer
    # steps (None: no such bound), if the program is at most shrink_stall_steps long by then
    # (statemodel.fuzz.shrink). A count, not seconds: the same seed shrinks as far anywhere.
    shrink_stall: int | None = None
    shrink_stall_steps: int = 10

    def __post_init__(self) -> None:
        # Workers against one ws:// server share it: one worker's sessions may be shed for
        # another's pressure (PROTOCOL.md §6), which the target allows only when told
        # (``#shared=1``). The URL carries it into reproducers and the database namespace.
        # A URL that does not parse stays as typed: the target check then quotes it.
        from statemodel.target.external import is_ws_url, parse_ws_url

        if self.workers > 1 and is_ws_url(self.target):
            from statemodel.target.shared import shared_url

            try:
                parse_ws_url(self.target)
            except ValueError:
                return
            object.__setattr__(self, "target", shared_url(self.target))

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["mutants"] = list(self.mutants)
        return d


@dataclasses.dataclass
class Failure:
    """One distinct failure, with everything needed to write and re-run a reproducer."""

    worker: int
    seed: int
    error_type: str
    message: str
    program: str | None
    blob: tuple[str, str] | None  # (hypothesis version, bytes literal)
    machine: str  # module:callable
    options: dict[str, Any]
    step_count: int  # stateful_step_count, needed to replay the blob
    # The structured record every failure gets (statemodel.record.failure_record):
    # {"invariant", "where", "expected", "actual", "step", "title"}
    invariant: dict[str, Any] | None = None
    recording: dict[str, Any] | None = None
    reproduced: bool | None = None  # did re-running the program fail the same way?
    traceback: str | None = None
    shrunk: bool = True  # False: the shrink budget ran out (or the failure was flaky)
    # Did re-running the program record exactly what Hypothesis' own final replay recorded?
    # (None: not compared.) On the sim anything but True is a determinism bug.
    replay_matches: bool | None = None
    # Why there is no program (Hypothesis could not replay the failure: it depends on timing)
    unreplayable: str | None = None

    def key(self) -> tuple:
        return (self.error_type, self.message, self.program)

    @property
    def cause(self) -> tuple:
        """The root-cause key (statemodel.fuzz.causes)."""
        from statemodel.fuzz.causes import root_cause

        return root_cause(self.invariant, self.program, self.error_type)

    @property
    def title(self) -> str:
        if self.invariant:
            return self.invariant["title"]
        return f"{self.error_type}: {self.message}"


@dataclasses.dataclass
class WorkerResult:
    worker: int
    seed: int
    examples: int = 0
    steps: int = 0
    faults: dict[str, int] = dataclasses.field(default_factory=dict)
    scenarios: dict[str, int] = dataclasses.field(default_factory=dict)  # examples per scenario class
    slowest_recovery: float | None = None
    trace_digest: str = ""
    failures: list[Failure] = dataclasses.field(default_factory=list)
    interrupted: bool = False
    error: str | None = None  # infrastructure error in this worker
    # the tester's own errors (statemodel.blame) that ended a batch, "batch N (seed S): ..."; the
    # worker went on with its next batch (runner.MAX_TESTER_ERRORS)
    tester_errors: list[str] = dataclasses.field(default_factory=list)
    note: str | None = None  # e.g. why nothing ran
    elapsed: float = 0.0
    discarded: int = 0  # examples Hypothesis discarded unfinished (not counted as examples)
    shrink_runs: int = 0  # test runs of the shrinker (not examples)
    replays: int = 0  # re-runs of known failures (Hypothesis' final replays)
    shrink_seconds: float = 0.0
    shrink_stopped: str | None = None  # "budget" or "interrupted" when shrinking was cut short
    memory: dict[str, Any] | None = None  # RSS: peak_mib, plateau_mib, ... (statemodel.fuzz.memory)

    @property
    def errors(self) -> list[str]:
        """The worker-ending error first, then the batches' tester errors."""
        return ([self.error] if self.error else []) + self.tester_errors


@dataclasses.dataclass
class FuzzResult:
    config: FuzzConfig
    workers: list[WorkerResult]
    trace_digest: str
    elapsed: float

    @property
    def all_failures(self) -> list[Failure]:
        """Every failure every worker reported, identical ones (same program) once."""
        seen, out = set(), []
        for w in self.workers:
            for f in w.failures:
                if f.key() not in seen:
                    seen.add(f.key())
                    out.append(f)
        return out

    @property
    def causes(self) -> list[list[Failure]]:
        """Failures grouped by root cause, each group led by its shortest program."""
        from statemodel.fuzz.causes import group

        return group(self.all_failures)

    @property
    def failures(self) -> list[Failure]:
        """One failure per root cause (the shortest program of each group)."""
        return [g[0] for g in self.causes]

    @property
    def discarded(self) -> int:
        return sum(w.discarded for w in self.workers)

    @property
    def shrink_runs(self) -> int:
        return sum(w.shrink_runs for w in self.workers)

    @property
    def replays(self) -> int:
        return sum(w.replays for w in self.workers)

    @property
    def examples(self) -> int:
        return sum(w.examples for w in self.workers)

    @property
    def steps(self) -> int:
        return sum(w.steps for w in self.workers)

    @property
    def rates(self) -> dict[str, float]:
        """Examples and steps generated per wall-clock second, summed over the workers. A
        worker's time spent shrinking does not count: the shrinker's runs are not examples."""
        examples = steps = 0.0
        for w in self.workers:
            seconds = w.elapsed - w.shrink_seconds
            if seconds > 0:
                examples += w.examples / seconds
                steps += w.steps / seconds
        return {"examples_per_s": examples, "steps_per_s": steps}

    @property
    def memory(self) -> dict[str, float | None]:
        """The largest worker RSS: peak (high-water mark) and plateau (the run's second half)."""
        def most(key: str) -> float | None:
            values = [w.memory[key] for w in self.workers if w.memory and w.memory.get(key) is not None]
            return max(values) if values else None
        return {"peak_mib": most("peak_mib"), "plateau_mib": most("plateau_mib")}

    @property
    def faults(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for w in self.workers:
            for k, v in w.faults.items():
                total[k] = total.get(k, 0) + v
        return dict(sorted(total.items()))

    @property
    def scenarios(self) -> dict[str, int]:
        """Examples that reached each scenario class, over all workers (machine/coverage.py)."""
        total: dict[str, int] = {}
        for w in self.workers:
            for k, v in w.scenarios.items():
                total[k] = total.get(k, 0) + v
        return dict(sorted(total.items()))

    @property
    def slowest_recovery(self) -> float | None:
        vals = [w.slowest_recovery for w in self.workers if w.slowest_recovery is not None]
        return max(vals) if vals else None

    @property
    def interrupted(self) -> bool:
        return any(w.interrupted for w in self.workers)

    @property
    def errors(self) -> list[str]:
        return [f"worker {w.worker}: {e}" for w in self.workers for e in w.errors]

    @property
    def exit_code(self) -> int:
        if self.failures:
            return 1
        if self.errors or self.interrupted:
            return 2
        return 0
