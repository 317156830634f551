"""A failure of the target that recurs at another step when Hypothesis re-runs its choices is
the target's failure, not the tester's error.

A stateful test draws at every step, so a re-run that fails *earlier* than the first run
makes Hypothesis' data tree raise a bare FlakyStrategyDefinition ("The second run stopped
drawing earlier"), not FlakyFailure. The runner took that for a state machine drawing
differently and told the user "Nothing in the target needs fixing for it", exit 2, 0
failures, though the target had failed twice. Over real sockets, where a race's step moves
with timing, that is how a real intermittent server bug would have been reported."""

from __future__ import annotations

import json

import pytest
import timing_failure_machine

from statemodel.fuzz.config import FuzzConfig
from statemodel.fuzz.workers import run

MACHINE = "timing_failure_machine:machine_class"


@pytest.mark.parametrize("plan", [[3, 2], [5, 3, 2], [3]], ids=["earlier", "earlier-twice", "once"])
def test_a_failure_whose_step_moves_between_runs_is_a_failure_of_the_target(plan, capsys) -> None:
    timing_failure_machine.PLAN[:] = plan
    result = run(FuzzConfig(machine=MACHINE, seed=1, examples=50, profile="dev"))
    assert result.errors == []
    assert result.exit_code == 1
    [failure] = result.failures
    assert failure.title == "invariant delivery is in order violated at stream 0"
    assert failure.program == "" and failure.reproduced is False
    assert failure.unreplayable.startswith("Hypothesis could not replay this failure")
    assert "depends on timing" in failure.unreplayable


def test_the_user_is_told_it_is_a_timing_dependent_failure_where_it_was_seen(tmp_path, capsys) -> None:
    from statemodel.cli import main

    timing_failure_machine.PLAN[:] = [3, 2]
    code = main(["fuzz", "--machine", MACHINE, "--examples", "50", "--seed", "1", "--report", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILURE 1: invariant delivery is in order violated at stream 0" in out
    assert "tester error" not in out and "Nothing in the target needs fixing" not in out
    assert ("warning: Hypothesis could not replay this failure: re-running the same choices failed at another "
            "step, or not at all, so it depends on timing. Seen in or right after step 3 of its example, "
            "step(x=") in out
    assert "(on the sim every failure replays: this one is also a determinism bug" in out  # the toy runs "on the sim"
    [trace] = tmp_path.glob("**/trace.json")
    assert "depends on timing" in json.loads(trace.read_text())["unreplayable"]
    assert not list(tmp_path.glob("**/repro_test.py")) and f"report: {tmp_path / 'failure-1'} (trace.json" in out


def test_a_machine_that_draws_differently_with_no_failure_behind_it_is_still_the_testers_error() -> None:
    result = run(FuzzConfig(machine="flaky_machine:machine_class", seed=1, examples=300, profile="dev"))
    assert result.failures == [] and result.exit_code == 2
    # it recurs in every batch (each runs the examples the last did not): the worker gives up
    assert "precondition or bundle depends on timing" in result.errors[1]


def test_a_failure_whose_shrunk_program_passes_on_replay_is_a_failure_not_an_error(capsys) -> None:
    """With a shrink budget (the nightly's), the program saved while shrinking is replayed; when
    it passes, the run said "statemodel fuzz: error: ... no longer fails when replayed (a flaky
    failure?)", exit 2, failures 0: the target's failure was dropped."""
    timing_failure_machine.PLAN[:] = [3]
    result = run(FuzzConfig(machine=MACHINE, seed=1, examples=50, profile="dev", shrink_budget=0))
    assert result.errors == [] and result.exit_code == 1
    [failure] = result.failures
    assert failure.title == "invariant delivery is in order violated at stream 0"
    assert failure.unreplayable == ("Hypothesis could not replay this failure: the program saved while shrinking did "
                                    "not fail when re-run, so it depends on timing. Seen in or right after step 3 "
                                    "of its example, step(x=0).")
