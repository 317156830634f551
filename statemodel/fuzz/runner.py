"""One worker's fuzz loop: Hypothesis' public stateful API with an explicit seed.

Determinism: each batch runs ``run_state_machine_as_test`` on a factory decorated with
``hypothesis.seed(N)`` (the public seeding route, which ``get_state_machine_test`` copies
from the factory), no wall-clock inputs reach the machine, and every recording executed is
folded in order into the worker's ``trace_digest``. Wall time is read only to stop a
``--duration`` run between batches and to pace the progress display.
"""

from __future__ import annotations

import hashlib
import time
from typing import Callable

from hypothesis import seed as hypothesis_seed
from hypothesis import settings as Settings
from hypothesis.stateful import run_state_machine_as_test

import statemodel.profiles  # noqa: F401  (registers ci, dev, nightly, replay)
from statemodel.fuzz.config import Failure, FuzzConfig, WorkerResult
from statemodel.fuzz.database import open_database
from statemodel.fuzz.machine import LoadedMachine, build_options, load_machine
from statemodel.record import Recorder, canonical
from statemodel.report.program import (
    ProgramError,
    blob_from_notes,
    error_summary,
    program_from_notes,
    run_program,
)

ProgressFn = Callable[[int, dict], None]


class InfrastructureError(Exception):
    """Hypothesis or the machine could not run (not a failure of the system under test)."""


# Examples per Hypothesis run. Each run keeps its last 10,000 test results in memory (with
# their choice sequences and events), about 0.4 MB each for 50-step programs: one 20,000-example
# run grew a worker past 4 GB. Later batches get fresh seeds (batch_seed), like --duration.
MAX_BATCH = 2000


def worker_seed(config: FuzzConfig, worker: int) -> int:
    return config.seed + worker


def batch_seed(base: int, batch: int) -> int:
    """Fresh, reproducible seeds for later batches (--duration, or --examples above MAX_BATCH)."""
    if batch == 0:
        return base
    return int.from_bytes(hashlib.sha256(f"{base}:{batch}".encode()).digest()[:8], "big")


def examples_for(config: FuzzConfig, worker: int, profile_max: int) -> int:
    total = config.examples if config.examples is not None else profile_max
    share, extra = divmod(total, config.workers)
    return max(1, share + (1 if worker < extra else 0))


def options_dict(config: FuzzConfig) -> dict:
    return {"target": config.target, "transport": config.transport,
            "mutants": sorted(config.mutants)}


def make_factory(cls: type, seed_value: int, should_stop: Callable[[], bool] = lambda: False):
    """A zero-argument factory with a stable source (stable database key) and a seed.

    A requested stop (Ctrl-C, time-out) is raised here, between examples, as the
    KeyboardInterrupt Hypothesis propagates at once; raising it from a signal handler
    could land anywhere (e.g. inside a gc callback, where it is swallowed).
    """

    def factory():
        if should_stop():
            raise KeyboardInterrupt("stop requested")
        return cls()

    return hypothesis_seed(seed_value)(factory)


def run_worker(
    config: FuzzConfig,
    worker: int = 0,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> WorkerResult:
    started = time.monotonic()
    base_seed = worker_seed(config, worker)
    result = WorkerResult(worker=worker, seed=base_seed)
    loaded = load_machine(config.machine)
    options = build_options(loaded, config.target, config.transport, config.mutants, record=True)
    cls = loaded.machine_class(options)
    namespace = loaded.spec + canonical(options_dict(config))
    db = open_database(config.db, namespace)
    profile = Settings.get_profile(config.profile)
    # --examples: run them in batches of at most MAX_BATCH; --duration: batches until time is up
    remaining: int | None = examples_for(config, worker, profile.max_examples)
    if config.duration is not None and config.examples is None:
        remaining = None
    deadline = started + config.duration if config.duration is not None else None

    def on_fold(col):
        if progress is not None:
            progress(worker, col.snapshot())

    with Recorder.collecting() as col:
        col.listener = on_fold
        batch = 0
        while True:
            if should_stop():
                result.interrupted = True
                break
            size = config.batch_examples if remaining is None else min(remaining, MAX_BATCH)
            s = Settings(
                profile, max_examples=size, database=db, print_blob=True, deadline=None,
                derandomize=False,
            )
            try:
                run_state_machine_as_test(
                    make_factory(cls, batch_seed(base_seed, batch), should_stop), settings=s
                )
            except KeyboardInterrupt:
                result.interrupted = True
                break
            except BaseException as exc:  # noqa: BLE001 - sorted into failures / errors below
                if type(exc).__name__ in ("SkipTest", "Skipped"):
                    # e.g. the replay profile with nothing in the database: nothing to run
                    result.note = str(exc)
                    break
                found = extract_failures(exc) or unreplayable_failures(exc)
                if not found:
                    raise InfrastructureError(f"{type(exc).__name__}: {exc}") from exc
                col.flush()
                with Recorder.paused():
                    for exc_, program, blob in found:
                        result.failures.append(
                            describe_failure(exc_, program, blob, loaded, config, worker,
                                             batch_seed(base_seed, batch), profile)
                        )
                break
            batch += 1
            if remaining is not None:
                remaining -= size
                if remaining <= 0:
                    break
            elif deadline is None or time.monotonic() >= deadline:
                break
        col.listener = None
    result.examples, result.steps = col.examples, col.steps
    result.faults = dict(sorted(col.faults.items()))
    result.slowest_recovery = col.slowest_recovery
    result.trace_digest = col.digest()
    result.elapsed = time.monotonic() - started
    return result


def extract_failures(exc: BaseException) -> list[tuple[BaseException, str, tuple | None]]:
    """Every (exception, printed program, blob) Hypothesis reported, groups included."""
    out = []

    def visit(e: BaseException, inherited: list[str]):
        notes = list(getattr(e, "__notes__", []) or [])
        program = program_from_notes(notes)
        if program is not None:
            out.append((_original(e), program, blob_from_notes(notes + inherited)))
            return True
        if isinstance(e, BaseExceptionGroup):
            hit = False
            for sub in e.exceptions:
                hit = visit(sub, inherited + notes) or hit
            return hit
        return False

    visit(exc, [])
    return out


def _original(exc: BaseException) -> BaseException:
    """What failed, even when Hypothesis could not replay it: a ``FlakyFailure`` names only
    itself ("produces unreliable results"); the error it holds is the finding."""
    from hypothesis.errors import Flaky

    if isinstance(exc, Flaky) and isinstance(exc, BaseExceptionGroup):
        leaves = unreplayable_failures(exc)
        if leaves:
            leaf = leaves[0][0]
            leaf.add_note(f"(Hypothesis could not replay this failure: {str(exc).splitlines()[0]})")
            return leaf
    return exc


def unreplayable_failures(exc: BaseException) -> list[tuple[BaseException, str, None]]:
    """Failures Hypothesis found but could not replay (``FlakyFailure``): over real sockets a
    failure may recur at another step, or not at all, and replaying raises
    ``FlakyStrategyDefinition``. The original errors are still failures: reported without a
    program, never dropped as an infrastructure error with zero examples counted."""
    from hypothesis.errors import Flaky

    if not (isinstance(exc, Flaky) and isinstance(exc, BaseExceptionGroup)):
        return []
    leaves, todo = [], [exc]
    while todo:
        e = todo.pop()
        if isinstance(e, BaseExceptionGroup):
            todo.extend(reversed(e.exceptions))
        elif not isinstance(e, Flaky):
            leaves.append((e, "", None))
    return leaves


def describe_failure(exc, program, blob, loaded: LoadedMachine, config: FuzzConfig, worker: int,
                     seed_value: int, profile) -> Failure:
    error_type, message = error_summary(exc)
    failure = Failure(
        worker=worker, seed=seed_value, error_type=error_type, message=message,
        program=program, blob=blob, machine=loaded.spec, options=options_dict(config),
        step_count=profile.stateful_step_count,
    )
    # Re-run the shrunk program outside Hypothesis: proves it reproduces and records it.
    try:
        options = build_options(loaded, config.target, config.transport, config.mutants, record=True)
        outcome = run_program(loaded.machine_class(options), program)
    except ProgramError as err:
        failure.reproduced = False
        failure.traceback = str(err)
        return failure
    recorder = getattr(outcome.state, "recorder", None) or Recorder.last
    if recorder is not None:
        failure.recording = recorder.to_json()
        failure.invariant = recorder.violated
    failure.reproduced = outcome.error is not None and error_summary(outcome.error) == (error_type, message)
    failure.traceback = outcome.traceback
    return failure
