"""The tester's own errors (Hypothesis', statemodel's) are errors of the run, said plainly,
never the target's failure (statemodel.blame). Beside two CPU spinners a tcp run reported
Hypothesis' own "Inconsistent data generation" (FlakyStrategyDefinition from its datatree.py)
as "invariant no unhandled exception violated at datatree.py:split_at": a user would hunt a
bug in their server that is not there."""

from __future__ import annotations

import logging
import re

import pytest

from statemodel.blame import TesterError
from statemodel.fuzz.config import FuzzConfig
from statemodel.fuzz.runner import run_worker
from statemodel.fuzz.workers import run
from statemodel.machine.logwatch import TracebackWatch
from statemodel.model import InvariantViolation
from statemodel.record import UNHANDLED, failure_record
from statemodel.stream.frames import decode

NOT_THE_TARGET = "tester error, not a failure of the target"
WHAT_TO_DO = "Nothing in the target needs fixing for it. Run the same command again (same --seed)"


def test_an_error_hypothesis_raises_inside_an_example_is_an_error_of_the_run() -> None:
    """Hypothesis treats its own exception raised inside an example as the test's failure,
    shrinks it and reports it with the program: that used to be FAILURE "no unhandled
    exception" (at Hypothesis' own file)."""
    result = run(FuzzConfig(machine="harness_error_machine:machine_class", seed=1, examples=5, profile="dev"))
    assert result.failures == []
    assert result.exit_code == 2  # it recurs in every batch: the worker gives up (MAX_TESTER_ERRORS)
    error = result.errors[1]
    assert f"worker 0: batch 0 (seed 1): {NOT_THE_TARGET}: Hypothesis' own InvalidArgument" in error
    assert WHAT_TO_DO in error


def test_a_flaky_strategy_definition_is_a_tester_error_that_says_what_to_do(monkeypatch) -> None:
    """The closing note's case: Hypothesis' datatree found the machine drawing differently
    on a re-run. The error says it is not the target's, why, and what to do; while the run
    goes on, its failure record's title names the tester too."""
    import statemodel.fuzz.runner as runner

    seen = []
    real = runner.tester_message
    monkeypatch.setattr(runner, "tester_message", lambda exc, why="": seen.append(exc) or real(exc, why))
    result = run_worker(FuzzConfig(machine="flaky_machine:machine_class", seed=1, examples=300, profile="dev"))
    message = result.tester_errors[0]
    assert message.startswith(f"batch 0 (seed 1): {NOT_THE_TARGET}: Hypothesis' own FlakyStrategyDefinition: "
                              "Inconsistent data")
    assert "precondition or bundle depends on timing" in message and WHAT_TO_DO in message
    # Hypothesis' detail, what differed between the two runs: the lead to the cause
    assert "Is your data generation depending on external state? [The second run stopped drawing earlier" in message
    record = failure_record(seen[0])
    assert record["invariant"] != UNHANDLED and record["tester"] == "Hypothesis"
    assert record["title"].startswith("tester error (Hypothesis' own, not the target's) at datatree.py:")


def test_a_tester_error_ends_its_batch_not_the_night() -> None:
    """One FlakyStrategyDefinition used to end the worker (InfrastructureError) and lose its
    counts: a nightly run lost the rest of its night. Batch 0 (200 examples) runs clean, the
    machine turns flaky in batch 1: the worker reports that batch's error, goes on with batch
    2 (and 3: the examples the errored batches did not run), keeps every count, and gives up
    at MAX_TESTER_ERRORS; exit 2 (an error of the run), no failure."""
    result = run(FuzzConfig(machine="late_flaky_machine:machine_class", seed=1, examples=450, profile="dev"))
    worker = result.workers[0]
    assert result.failures == [] and result.exit_code == 2
    assert worker.examples > 200 and worker.steps > 0  # batch 0's 200 and more, not lost
    assert [e.split(":", 1)[0] for e in worker.tester_errors] == [
        "batch 1 (seed 15471431920398990283)", "batch 2 (seed 7438520176602755083)",
        "batch 3 (seed 9652040389593855171)"]  # batch 3: what batches 1 and 2 did not run
    assert worker.error is not None  # three errors: MAX_TESTER_ERRORS
    assert all(f"{NOT_THE_TARGET}: Hypothesis' own FlakyStrategyDefinition" in e for e in result.errors[1:])


def test_a_worker_gives_up_after_max_tester_errors() -> None:
    """An error in every batch is statemodel's to fix: the worker stops after MAX_TESTER_ERRORS
    of them (a --duration run would otherwise spend its night starting batches that fail)."""
    from statemodel.fuzz.runner import MAX_TESTER_ERRORS

    result = run(FuzzConfig(machine="flaky_machine:machine_class", seed=1, examples=5 * 200, profile="dev"))
    worker = result.workers[0]
    assert len(worker.tester_errors) == MAX_TESTER_ERRORS and result.exit_code == 2
    assert worker.error == f"gave up after {MAX_TESTER_ERRORS} batches ended in the tester's own error (below)"
    assert result.errors[0] == f"worker 0: {worker.error}" and len(result.errors) == 1 + MAX_TESTER_ERRORS


def _logged(exc: BaseException) -> TracebackWatch:
    """A TracebackWatch that saw the reference server log ``exc`` as a crashed handler."""
    watch = TracebackWatch().attach()
    try:
        try:
            raise exc
        except BaseException:  # noqa: BLE001 - logged as the server does
            logging.getLogger("statemodel.stream.server").exception("connection handler crashed")
    finally:
        watch.detach()
    return watch


def test_a_server_traceback_is_still_the_targets_failure() -> None:
    """Raised in the reference implementation (a frame it cannot decode), logged by its
    server: "no unhandled exception", the target's, in the log check and the failure record."""
    try:
        decode(b"\xff not a frame", max_frame_size=1024)
    except Exception as exc:  # noqa: BLE001 - whatever the decoder raises
        crash = exc
    assert failure_record(crash)["invariant"] == UNHANDLED
    with pytest.raises(InvariantViolation, match="no unhandled exception"):
        _logged(crash).check()


def test_a_hypothesis_error_the_server_logged_is_a_tester_error() -> None:
    """A Hypothesis error that surfaced through the server's log (the machine's callback ran in
    a server task) is not the server's either."""
    from hypothesis.errors import FlakyStrategyDefinition

    with pytest.raises(TesterError, match=f"^{NOT_THE_TARGET}: Hypothesis' own FlakyStrategyDefinition"):
        _logged(FlakyStrategyDefinition("Inconsistent data generation!")).check()


def test_a_crash_of_statemodels_machine_side_is_its_own_and_a_failed_check_is_a_finding() -> None:
    """Raised in statemodel's own machine code: statemodel's bug (with what to do); an
    assertion raised there is a check that failed, the target's as before."""
    from statemodel.blame import tester_fault, tester_message
    from statemodel.bridge import VirtualClock

    try:
        VirtualClock().jump(-1)
    except ValueError as exc:
        crash = exc
    assert tester_fault(crash) == "statemodel"
    assert failure_record(crash)["title"] == "tester error (statemodel's own, not the target's) at bridge.py:jump"
    assert tester_message(crash).startswith(f"{NOT_THE_TARGET}: statemodel's own ValueError: time can't go backwards")
    assert "A bug of statemodel's: report it to the statemodel maintainers" in tester_message(crash)
    import statemodel.machine.stream_machine as machine_code

    try:  # as a machine's own `assert` would raise it, in the machine's file
        exec(compile("assert 1 == 2, 'prefix: expected 1, got 2'", machine_code.__file__, "exec"))
    except AssertionError as exc:
        check = exc
    assert tester_fault(check) is None and failure_record(check)["invariant"] == UNHANDLED


def test_any_exception_raised_inside_hypothesis_is_hypothesis_own() -> None:
    """Not only ``hypothesis.errors``: a plain error from Hypothesis' own code (as its internals
    would raise it, in its file) is Hypothesis', with Hypothesis' advice."""
    import hypothesis.internal.conjecture.datatree as datatree

    from statemodel.blame import tester_fault, tester_message

    try:
        exec(compile("raise KeyError('a node that is not there')", datatree.__file__, "exec"))
    except KeyError as exc:
        internal = exc
    assert tester_fault(internal) == "Hypothesis"
    assert tester_message(internal).startswith(f"{NOT_THE_TARGET}: Hypothesis' own KeyError")
    assert WHAT_TO_DO in tester_message(internal)


def test_a_tester_error_is_not_shrunk_nor_announced_as_found() -> None:
    """Hypothesis shrinks its own error raised inside an example as it would the target's
    failure: progress said "FOUND: ...; shrinking it" and the batch spent its shrink budget
    (up to --shrink-budget, 60 s) on a program nobody will read. The batch now ends at the
    first such error, says so as an error, and goes on with the next batch."""
    import io

    from statemodel.fuzz.progress import Progress

    out = io.StringIO()
    snapshots = []
    with Progress(1, stream=out, live=False) as progress:
        def seen(worker, snap):
            snapshots.append(snap)
            progress.update(worker, snap)

        result = run_worker(FuzzConfig(machine="harness_error_machine:machine_class_late", seed=1,
                                       examples=40, profile="dev"), progress=seen)
    assert result.failures == [] and result.shrink_runs == 0 and result.shrink_seconds == 0
    assert [e.split(":", 1)[0] for e in result.tester_errors][0] == "batch 0 (seed 1)"
    assert f"{NOT_THE_TARGET}: Hypothesis' own InvalidArgument" in result.tester_errors[0]
    # not shrunk, so the report says where in its example it was raised (the rule that raised)
    assert re.search(r" It was raised in or right after step \d+ of its example, step\(x=[0-3]\)\.$",
                     result.tester_errors[0])
    assert not any(s.get("phase") in ("shrink", "replay") for s in snapshots)
    printed = out.getvalue()
    assert "FOUND" not in printed and "shrinking" not in printed
    assert f"ERROR: batch 0 (seed 1): {NOT_THE_TARGET}: Hypothesis' own InvalidArgument" in printed


def test_a_tester_error_early_in_an_examples_run_leaves_the_rest_to_the_next_batch() -> None:
    """`--examples 300` whose batch 0 (200 examples) ended in a tester error at its 3rd example
    ran 6 examples in all: the errored batch's whole quota was counted as done. The next batch
    now runs what it did not, so the run still generates the examples asked for."""
    result = run(FuzzConfig(machine="harness_error_machine:machine_class_once", seed=1, examples=50,
                            profile="dev"))
    worker = result.workers[0]
    assert [e.split(":", 1)[0] for e in worker.tester_errors] == ["batch 0 (seed 1)"]
    assert worker.examples == 50 and result.exit_code == 2
