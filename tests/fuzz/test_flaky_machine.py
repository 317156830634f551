"""A machine that draws differently for the same choices is the machine's bug, said plainly."""

from __future__ import annotations

from statemodel.fuzz.config import FuzzConfig
from statemodel.fuzz.runner import run_worker


def test_a_precondition_that_reads_timing_is_named_as_the_machines_bug() -> None:
    # A 1,000-example tcp run ended in a bare "FlakyStrategyDefinition: Inconsistent data
    # generation!": nothing said that the state machine, not the server, was at fault.
    result = run_worker(FuzzConfig(machine="flaky_machine:machine_class", seed=1, examples=300, profile="dev"))
    assert result.tester_errors and all("precondition or bundle depends on timing" in e and
                                        "not a failure of the target" in e for e in result.tester_errors)
