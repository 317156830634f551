"""Smoke test of the step-rate benchmark (numbers only; no speed assertions in unit tests)."""

from statemodel.bench.steprate import measure


def test_measure_reports_positive_rates_on_a_tiny_budget() -> None:
    result = measure(seconds=0.05)
    assert result["bare_steps"] > 0 and result["bridged_steps"] > 0
    assert result["bare_steps_per_s"] > 0 and result["bridged_steps_per_s"] > 0
    assert result["ratio"] == result["bridged_steps_per_s"] / result["bare_steps_per_s"]
