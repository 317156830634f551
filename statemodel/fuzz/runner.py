"""One worker's fuzz loop: Hypothesis' public stateful API with an explicit seed.

Determinism: each batch runs ``run_state_machine_as_test`` on a factory decorated with
``hypothesis.seed(N)`` (the public seeding route, which ``get_state_machine_test`` copies
from the factory), no wall-clock inputs reach the machine, and every generated example's
recording is folded in order into the worker's ``trace_digest``. Wall time is read only to
stop a ``--duration`` run between batches, to bound shrinking and to pace the progress display.

A batch is one Hypothesis run with ``report_multiple_bugs=False``: generation stops at the
first failure (Hypothesis' multi-bug mode keeps generating for up to 10 s of wall time
after it, which no seed reproduces, and reports one bug once per line that raised it), and
every run after that failing example is a run of the shrinker, until Hypothesis' final
replay. So the counts are true: examples generated, shrink runs and replays apart. Shrinking
has a wall-clock budget (``shrink_budget``): Hypothesis saves every smaller failing program
to the example database as it finds it, so when the budget is spent the factory stops the
run between two shrink steps and a second, reuse-only run replays the smallest saved program,
which Hypothesis then prints (with its ``@reproduce_failure`` blob) as usual. Without a
``--db`` the database is one in memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import time
import traceback
from typing import Callable

from hypothesis import Phase
from hypothesis import seed as hypothesis_seed
from hypothesis import settings as Settings
from hypothesis.control import current_build_context
from hypothesis.database import InMemoryExampleDatabase
from hypothesis.errors import FlakyStrategyDefinition, Frozen, StopTest, UnsatisfiedAssumption
from hypothesis.stateful import run_state_machine_as_test

import statemodel.profiles  # noqa: F401  (registers ci, dev, nightly, replay)
from statemodel import literals
from statemodel.blame import tester_fault, tester_message
from statemodel.fuzz.config import Failure, FuzzConfig, WorkerResult
from statemodel.fuzz.database import open_database
from statemodel.fuzz.machine import LoadedMachine, build_options, load_machine
from statemodel.fuzz.memory import RssMeter, Sweeper, pin_malloc
from statemodel.pareto import cached_sort_keys
from statemodel.fuzz.shrink import steps_first
from statemodel.record import Recorder, canonical, failure_record, with_violation
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


class StopRun(KeyboardInterrupt):  # noqa: N818 - a stop, not an error
    """Raised by the factory between examples to end a Hypothesis run (Hypothesis lets a
    KeyboardInterrupt through at once; anything else would count as a failure)."""


# Examples per Hypothesis run. Each run keeps every result in memory (its choices and
# statistics: ~0.15 MB an example for the dev profile's 50-step programs) until it ends, so a
# worker's RSS climbs through a batch and drops after it. The same 1,000 examples (seed 5,
# RSS every 10 s): batches of 500 reached plateau 226 / peak 395 MiB and 306 MiB at the end,
# batches of 200 plateau 168 / peak 229 MiB (issue 14's bound is 250). Later batches get
# fresh seeds (batch_seed), like --duration; each starts with a few small examples.
MAX_BATCH = 200

# Batches of one worker that may end in the tester's own error (statemodel.blame) before the
# worker gives up. One such error used to end the worker and lose its counts: a nightly run
# lost the rest of its night to one FlakyStrategyDefinition (session 8 saw one in the 41st
# of a process' hunts). The next batch has a fresh seed; an error that recurs in every batch
# is statemodel's to fix, and a few are enough to say so.
MAX_TESTER_ERRORS = 3


@contextlib.contextmanager
def shrinking_without_wall_clock():
    """Lift Hypothesis' own 300 s shrinking deadline (``engine.MAX_SHRINKING_SECONDS``) for a run
    bounded by example count: with it, how far a failure shrinks depended on machine load (a
    hunt shrank to 2 steps alone and stopped at 11 beside other work). Shrinking still ends by
    count (Hypothesis' 500 successful shrinks and its call limit)."""
    from hypothesis.internal.conjecture import engine
    saved = engine.MAX_SHRINKING_SECONDS
    engine.MAX_SHRINKING_SECONDS = float("inf")
    try:
        yield
    finally:
        engine.MAX_SHRINKING_SECONDS = saved


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


# Exceptions Hypothesis raises through a test to end or discard an example.
NOT_FAILURES = (StopTest, UnsatisfiedAssumption, Frozen, KeyboardInterrupt)


class Phases:
    """Which phase a batch is in, as the factory sees it example by example."""

    def __init__(self) -> None:
        self.kind = "generate"  # then "shrink" once an example failed, "replay" for the report run
        self.shrink_started: float | None = None
        self.title: str | None = None  # the failure being shrunk
        # The tester's own error (statemodel.blame), raised inside an example: Hypothesis would
        # shrink it as it does the target's failures; the batch ends at the next example instead.
        self.tester: BaseException | None = None
        self.tester_step = ""  # where in its example, for whoever hunts its cause
        # The target's first failure and where it was seen: over real sockets its re-runs may
        # fail at another step, and Hypothesis then raises only FlakyStrategyDefinition.
        self.first: tuple[BaseException, str] | None = None
        # A real server is checked once a failure is found: a dead one fails every run, and the
        # shrinker's runs against it each waited out every real timer (TargetCheck).
        self.target_checked = False
        self.target_down: str | None = None

    def failed(self, exc: BaseException, recorder) -> None:
        if self.kind == "generate" and tester_fault(exc):
            if self.tester is None:
                self.tester, self.tester_step = exc, _where_in_example(recorder)
        elif self.kind == "generate":
            self.kind = "shrink"
            self.shrink_started = time.monotonic()
            self.title = failure_record(exc, recorder)["title"]
            self.first = (exc, _where_in_example(recorder) if recorder is not None else "")


def target_check(config: FuzzConfig, options) -> Callable[[], str | None]:
    """``check()``: None while the run's ws:// server still passes the preflight, else why not.

    A server that stopped during a run (crashed, killed, redeployed) failed the example under
    way and every run after it: the shrinker spent 262 s of a 10 s ``--shrink-budget`` (its
    budget is checked between runs, and each run against a dead server waits out every real
    timer), then said the failure was "flaky". Other targets are not probed."""
    from statemodel.fuzz.machine import DEFAULT_MACHINE, machine_spec
    from statemodel.target.external import is_ws_url

    if machine_spec(config.machine) != DEFAULT_MACHINE or not is_ws_url(config.target):
        return lambda: None
    from statemodel.target.preflight import TargetUnavailable, preflight

    def check() -> str | None:
        try:
            preflight(options)
        except TargetUnavailable as exc:
            return str(exc)
        return None

    return check


def _where_in_example(recorder) -> str:
    """``in or right after step 12 of its example, drop(session=0, fault=Abort())``: a tester
    error seen inside an example is not shrunk (Phases), so this is all the report says of
    where (Hypothesis raises while running a rule or while choosing the next one)."""
    steps = getattr(recorder, "steps", None)
    if not steps:
        return "before its example's first step"
    last = steps[-1]
    args = ", ".join(f"{k}={v}" for k, v in last["args"].items())
    return f"in or right after step {len(steps)} of its example, {last['rule']}({args})"


def _observe(machine, phases: Phases):
    """Tag the run's recording with its kind, and mark it failed when an exception ends it.

    Hypothesis calls ``teardown()`` from a ``finally``: the exception ending the example (if
    any) is the one being handled there, so ``sys.exc_info()`` names it; a failing teardown
    is a failure too."""
    recorder = getattr(machine, "recorder", None)
    kind = "replay" if current_build_context().is_final else phases.kind
    if recorder is not None:
        recorder.kind = kind
        recorder.wire = kind == "replay"  # the failure's final replay is compared with its re-run
    teardown = machine.teardown

    def observed_teardown():
        failed = sys.exc_info()[1]
        if isinstance(failed, NOT_FAILURES):
            if recorder is not None and not isinstance(failed, KeyboardInterrupt):
                recorder.discarded = True  # Hypothesis discarded it (an overrun, say): not an example
            failed = None
        try:
            teardown()
        except BaseException as exc:
            failed = failed or exc
            raise
        finally:
            if failed is not None:
                if recorder is not None:
                    recorder.failed = True
                if kind != "replay":
                    phases.failed(failed, recorder)
            # Hypothesis' record of the example (frozen by the next sweep) keeps the machine:
            # let it keep an empty one, so the world it ran is garbage the sweep frees.
            vars(machine).clear()

    machine.teardown = observed_teardown
    return machine


def make_factory(cls: type, seed_value: int, should_stop: Callable[[], bool] = lambda: False,
                 phases: Phases | None = None, sweep: Callable[[], None] = lambda: None):
    """A zero-argument factory with a stable source (stable database key) and a seed.

    A requested stop (Ctrl-C, time-out, shrink budget) is raised here, between examples, as
    the KeyboardInterrupt Hypothesis propagates at once; raising it from a signal handler
    could land anywhere (e.g. inside a gc callback, where it is swallowed). ``sweep`` runs
    there too, before each machine is built (``memory.Sweeper``).
    """
    phases = phases or Phases()

    def factory():
        if should_stop():
            raise StopRun("stop requested")
        sweep()
        return _observe(cls(), phases)

    return hypothesis_seed(seed_value)(factory)


def _run(cls, seed_value, settings, should_stop, phases: Phases) -> BaseException | None:
    """One Hypothesis run; returns what it raised (None: it passed). A stop propagates."""
    try:
        # cached_sort_keys: the same examples, without recomputing the pareto front's keys
        with Sweeper() as sweeper, literals.held(), cached_sort_keys():  # held: same seed => same programs, any install
            run_state_machine_as_test(make_factory(cls, seed_value, should_stop, phases, sweeper.sweep),
                                      settings=settings)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - sorted into failures / errors by the caller
        return exc
    return None


def _skipped(exc: BaseException) -> bool:
    return type(exc).__name__ in ("SkipTest", "Skipped")


def run_worker(
    config: FuzzConfig,
    worker: int = 0,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> WorkerResult:
    started = time.monotonic()
    pin_malloc()  # freed multi-MiB payloads go back to the kernel (statemodel.fuzz.memory)
    base_seed = worker_seed(config, worker)
    result = WorkerResult(worker=worker, seed=base_seed)
    loaded = load_machine(config.machine)
    options = build_options(loaded, config.target, config.transport, config.mutants, record=True)
    cls = loaded.machine_class(options)
    target_down = target_check(config, options)
    namespace = loaded.spec + canonical(options_dict(config))
    user_db = open_database(config.db, namespace)
    profile = Settings.get_profile(config.profile)
    # --examples: run them in batches of at most MAX_BATCH; --duration: batches until time is up
    remaining: int | None = examples_for(config, worker, profile.max_examples)
    if config.duration is not None and config.examples is None:
        remaining = None
    deadline = started + config.duration if config.duration is not None else None
    found: list[str] = []  # titles of the failures found, for progress
    current: list[Phases | None] = [None]  # the batch's phases, for progress

    def publish(col):
        if progress is None:
            return
        snap = col.snapshot()
        phases = current[0]
        snap["phase"] = phases.kind if phases else "generate"
        snap["found"] = list(found) + ([phases.title] if phases and phases.kind in ("shrink", "replay") else [])
        snap["tester_errors"] = list(result.tester_errors)
        if phases is not None and phases.shrink_started is not None:
            snap["shrink"] = {"seconds": time.monotonic() - phases.shrink_started,
                              "budget": config.shrink_budget, "best_steps": col.best_failing_steps,
                              "stopped": result.shrink_stopped}
        progress(worker, snap)

    with Recorder.collecting() as col, RssMeter() as rss, \
            steps_first(stall=config.shrink_stall, stall_steps=config.shrink_stall_steps):
        col.listener = publish
        batch = 0
        while True:
            if should_stop():
                result.interrupted = True
                break
            size = config.batch_examples if remaining is None else min(remaining, MAX_BATCH)
            # The shrinker's progress is kept in a database: the user's, or one in memory.
            db = user_db if user_db is not None else InMemoryExampleDatabase()
            settings = Settings(profile, max_examples=size, database=db, print_blob=True, deadline=None,
                                derandomize=False, report_multiple_bugs=False)
            seed_value = batch_seed(base_seed, batch)
            phases = current[0] = Phases()
            examples_before = col.examples

            def stop() -> bool:
                if should_stop() or phases.tester is not None:
                    return True
                started_shrinking = phases.shrink_started
                if started_shrinking is None:  # generating: a --duration run ends between examples,
                    # after one at least (a loaded host can spend a short duration starting up)
                    return deadline is not None and time.monotonic() >= deadline and col.examples > 0
                if not phases.target_checked:  # before the first shrink run: is the server still there?
                    phases.target_checked = True
                    phases.target_down = target_down()
                if phases.target_down is not None:
                    return True
                return (config.shrink_budget is not None
                        and time.monotonic() - started_shrinking >= config.shrink_budget)

            try:
                raised = _run(cls, seed_value, settings, stop, phases)
            except KeyboardInterrupt:
                col.flush()
                if phases.tester is not None:  # an error of the run (below): nothing to shrink or replay
                    raised = phases.tester
                    result.interrupted = should_stop()
                elif phases.target_down is not None:  # nothing to shrink or replay against
                    result.error = (f"the target stopped answering during the run, so the failure just "
                                    f"found ({phases.title}) says nothing about it: {phases.target_down}")
                    result.interrupted = should_stop()
                    break
                elif phases.shrink_started is None:  # stopped while generating: nothing to report
                    result.interrupted = should_stop()  # else --duration is over: a normal end
                    break
                else:  # stopped while shrinking: replay the smallest failing program saved so far
                    result.shrink_stopped = "interrupted" if should_stop() else "budget"
                    result.interrupted = should_stop()
                    phases.kind = "replay"
                    publish(col)
                    raised = _run(cls, seed_value, Settings(settings, phases=(Phase.reuse,)), lambda: False, phases)
            col.flush()
            if phases.shrink_started is not None:
                result.shrink_seconds += time.monotonic() - phases.shrink_started
            if raised is not None and _skipped(raised):
                # e.g. the replay profile with nothing in the database: nothing to run
                result.note = ("nothing to replay: the example database holds no saved example of "
                               "this machine and these options" if Phase.generate not in settings.phases
                               else str(raised))
                break
            final = Recorder.last if Recorder.last is not None and Recorder.last.kind == "replay" else None
            if raised is None and phases.shrink_started is not None:
                # The target failed, and the program saved while shrinking passed when replayed:
                # a failure that depends on timing is still the target's (timing_failures).
                raised = _unreplayable(*phases.first, "the program saved while shrinking did not fail when "
                                                      "re-run")
            if raised is not None:
                failures = (extract_failures(raised) or unreplayable_failures(raised)
                            or timing_failures(raised, phases))
                if not failures and not tester_fault(raised):
                    raise InfrastructureError(f"{type(raised).__name__}: {raised}") from raised
                # The tester's own error (Hypothesis', statemodel's), alone or raised inside an
                # example like the target's failures: an error of the run, never a failure; the
                # worker goes on with its next batch (MAX_TESTER_ERRORS).
                if not failures:
                    why = ("the machine drew differently when Hypothesis re-ran the same choices: a "
                           "precondition or bundle depends on timing, not on the program (a bug of "
                           "the state machine)" if isinstance(raised, FlakyStrategyDefinition) else "")
                    ours_msg = tester_message(raised, why)
                    if raised is phases.tester and phases.tester_step:
                        ours_msg += f" It was raised {phases.tester_step}."
                else:
                    blamed = [(f, tester_fault(f[0])) for f in failures]
                    ours = [f for f, whose in blamed if whose]
                    failures = [f for f, whose in blamed if not whose]
                    more = f" (+{len(ours) - 1} more)" if len(ours) > 1 else ""
                    ours_msg = tester_message(ours[0][0]) + more if ours else None
                if ours_msg is not None:
                    result.tester_errors.append(f"batch {batch} (seed {seed_value}): {ours_msg}")
                    publish(col)
                if not failures:
                    if len(result.tester_errors) >= MAX_TESTER_ERRORS:
                        result.error = (f"gave up after {len(result.tester_errors)} batches ended in the "
                                        f"tester's own error (below)")
                        break
                    # fall through to the next batch, which runs the examples this one did not:
                    # `--examples 300` ran 6 and exited after one error in batch 0's first examples
                    size = col.examples - examples_before
                else:
                    shrunk = Phase.shrink in settings.phases and result.shrink_stopped is None
                    with Recorder.paused():
                        for exc_, program, blob in failures:
                            failure = describe_failure(exc_, program, blob, loaded, config, worker, seed_value,
                                                       profile, shrunk, final if len(failures) == 1 else None)
                            result.failures.append(failure)
                            found.append(failure.title)
                    phases.kind = "done"
                    publish(col)
                    break
            batch += 1
            if remaining is not None:
                remaining -= size
                if remaining <= 0:
                    break
            elif deadline is None or time.monotonic() >= deadline:
                break
        col.listener = None
    result.memory = rss.summary()
    result.examples, result.steps = col.examples, col.steps
    result.shrink_runs, result.replays = col.runs["shrink"], col.runs["replay"]
    result.discarded = col.runs["discarded"]
    result.faults = dict(sorted(col.faults.items()))
    result.scenarios = dict(sorted(col.scenarios.items()))
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
            leaf.add_note(f"{_NOTE}: {str(exc).splitlines()[0]})")
            return leaf
    return exc


def unreplayable_failures(exc: BaseException) -> list[tuple[BaseException, str, None]]:
    """Failures Hypothesis found but could not replay (``FlakyFailure``): over real sockets a
    failure may recur at another step, or not at all, and replaying raises
    ``FlakyStrategyDefinition``. The original errors are still failures: reported without a
    program, never dropped as an infrastructure error with zero examples counted."""
    from hypothesis.errors import Flaky

    if _noted(exc) and not isinstance(exc, BaseExceptionGroup):  # a found failure that passed on replay
        return [(exc, "", None)]
    if not (isinstance(exc, Flaky) and isinstance(exc, BaseExceptionGroup)):
        return []
    leaves, todo = [], [exc]
    while todo:
        e = todo.pop()
        if isinstance(e, BaseExceptionGroup):
            todo.extend(reversed(e.exceptions))
        elif not isinstance(e, Flaky):
            if not _noted(e):
                _unreplayable(e, "", "re-running the same choices did not fail")
            leaves.append((e, "", None))
    return leaves


def timing_failures(exc: BaseException, phases: Phases) -> list[tuple[BaseException, str, None]]:
    """The target's failures behind a bare ``FlakyStrategyDefinition``.

    A stateful test draws at every step, so when a re-run of a failing example's choices
    fails at an *earlier* step ("stopped drawing earlier") or at a later one ("drew more
    data"), Hypothesis' data tree raises that, not ``FlakyFailure``, with the re-run's
    failure as its ``__context__``. Over real sockets that is a failure that depends on
    timing: the target failed (once or twice), and calling it the state machine's error told
    the user their server needed nothing. Reported without a program (none replays); only a
    ``FlakyStrategyDefinition`` with no failure of the target behind it stays a tester error."""
    from hypothesis.errors import Flaky

    flaky = exc if isinstance(exc, FlakyStrategyDefinition) else None
    if flaky is None and isinstance(exc, BaseExceptionGroup):
        match, _ = exc.split(FlakyStrategyDefinition)
        flaky = _first_leaf(match) if match is not None else None
    if flaky is None:
        return []
    seen = [phases.first] if phases.first is not None else []
    context = flaky.__context__
    if context is not None and not isinstance(context, (Flaky, *NOT_FAILURES)) and not tester_fault(context):
        seen.append((context, "when Hypothesis re-ran the example's choices"))
    out, keys = [], set()
    for failure, where in seen:
        if error_summary(failure) in keys:
            continue
        keys.add(error_summary(failure))
        out.append((_unreplayable(failure, where, "re-running the same choices failed at another step, or not "
                                                  "at all"), "", None))
    return out


def _unreplayable(failure: BaseException, where: str, how: str) -> BaseException:
    """``failure``, noted as one Hypothesis could not replay (``Failure.unreplayable``)."""
    failure.add_note(f"{_NOTE}: {how}, so it depends on timing."
                     + (f" Seen {where}.)" if where else ")"))
    return failure


_NOTE = "(Hypothesis could not replay this failure"


def _noted(exc: BaseException) -> bool:
    return any(n.startswith(_NOTE) for n in getattr(exc, "__notes__", ()))


def _first_leaf(group: BaseException) -> BaseException:
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group


def describe_failure(exc, program, blob, loaded: LoadedMachine, config: FuzzConfig, worker: int,
                     seed_value: int, profile, shrunk: bool = True, final: Recorder | None = None) -> Failure:
    """The failure as one structured record, with the recording of a re-run of its program
    outside Hypothesis (``final``: Hypothesis' own last replay of it, whose recording the
    re-run must equal on the sim: ``Failure.replay_matches``)."""
    error_type, message = error_summary(exc)
    failure = Failure(
        worker=worker, seed=seed_value, error_type=error_type, message=message,
        program=program, blob=blob, machine=loaded.spec, options=options_dict(config),
        step_count=profile.stateful_step_count, shrunk=shrunk,
    )
    # Re-run the shrunk program outside Hypothesis: proves it reproduces and records it.
    recorder = None
    if not program:  # Hypothesis could not replay it (unreplayable_failures, timing_failures)
        failure.reproduced = False
        failure.unreplayable = next((n.strip("()") for n in getattr(exc, "__notes__", ()) if n.startswith(_NOTE)), None)
        failure.traceback = "".join(traceback.format_exception(exc))
        failure.invariant = failure_record(exc)
        return failure
    try:
        options = build_options(loaded, config.target, config.transport, config.mutants, record=True)
        outcome = run_program(loaded.machine_class(options), program)
    except ProgramError as err:
        failure.reproduced = False
        failure.traceback = str(err)
    else:
        recorder = getattr(outcome.state, "recorder", None)
        if recorder is not None:
            failure.recording = recorder.to_json()
        failure.reproduced = outcome.error is not None and error_summary(outcome.error) == (error_type, message)
        failure.traceback = outcome.traceback
    # Hypothesis' exception is the failure; the re-run's recording says at which step.
    same = failure.reproduced and recorder is not None
    failure.invariant = failure_record(exc, recorder if same else None)
    if failure.recording is not None and same:
        failure.recording = with_violation(failure.recording, failure.invariant)
        if final is not None:
            ours = with_violation(final.to_json(), failure.invariant)
            failure.replay_matches = canonical(ours) == canonical(failure.recording)
    return failure
