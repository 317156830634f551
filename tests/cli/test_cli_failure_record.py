"""Every failure gets the same structured record, and failures are grouped by root cause
(issue 13 item 7; issue 15: one bug reported as many "distinct" failures)."""

from __future__ import annotations

import json

import pytest
from hypothesis import settings
from kept_programs import MUTANTS, ONE_BUG, SEED5

from statemodel.fuzz.causes import group, root_cause, trigger
from statemodel.fuzz.config import Failure, FuzzConfig, FuzzResult, WorkerResult
from statemodel.fuzz.machine import load_machine
from statemodel.fuzz.runner import describe_failure
from statemodel.machine import MachineOptions, machine_class
from statemodel.model import InvariantViolation
from statemodel.record import UNHANDLED, Recorder, failure_record
from statemodel.report.program import run_program
from statemodel.report.timeline import render_html
from statemodel.report.writer import failure_trace, summary

KEYS = {"invariant", "where", "expected", "actual", "step", "title"}


def test_a_model_violation_an_assertion_and_a_crash_get_the_same_record():
    violation = InvariantViolation("no loss at quiescence", "session 0 stream 2", "1 chunks", "0 delivered")
    recorder = Recorder()
    recorder.step("send")
    recorder.violation("prefix", [1], [1, 1])
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError as exc:
        crash = exc
    records = [failure_record(violation), failure_record(AssertionError("prefix: …"), recorder), failure_record(crash)]
    assert all(set(r) == KEYS for r in records)
    assert all(r["title"].startswith(f"invariant {r['invariant']} violated") for r in records)
    assert records[0]["title"] == "invariant no loss at quiescence violated at session 0 stream 2"
    assert (records[1]["expected"], records[1]["actual"], records[1]["step"]) == ([1], [1, 1], 1)
    assert records[2]["invariant"] == UNHANDLED and records[2]["actual"] == "RuntimeError: boom"
    assert records[2]["where"].endswith(":test_a_model_violation_an_assertion_and_a_crash_get_the_same_record")


def test_a_violation_raised_from_teardown_still_gets_invariant_expected_and_actual():
    """SEED5 fails in teardown (no loss at quiescence): its record used to be null."""
    cls = machine_class(MachineOptions(mutants=frozenset(MUTANTS), record=True))
    exc = run_program(cls, SEED5).error
    assert isinstance(exc, InvariantViolation)
    config = FuzzConfig(mutants=tuple(MUTANTS))
    failure = describe_failure(exc, SEED5, None, load_machine(None), config, 0, 5, settings())
    assert failure.reproduced is True
    record = failure.invariant
    assert set(record) == KEYS and record["invariant"] == "no loss at quiescence"
    assert record["expected"] and record["actual"] and record["step"] == 9
    trace = failure_trace(failure)
    assert trace["invariant"] == record and trace["recording"]["violation"]["expected"] == record["expected"]
    page = render_html(trace)
    assert "no loss at quiescence" in page and "expected:" in page and "actual:" in page
    assert json.loads(json.dumps(trace))["invariant"]["where"] == "session 0 stream 1"


def test_one_bug_seen_through_five_invariants_is_one_root_cause():
    keys = {root_cause({"invariant": inv, "where": where}, program) for inv, where, program in ONE_BUG}
    assert keys == {("trigger", "drop(Abort)")}
    assert root_cause({"invariant": "x"}, SEED5) == ("trigger", "outage", "restart_server")


def test_failures_without_a_disturbance_are_told_apart_by_symptom():
    plain = "state = M()\nstate.connect()\nstate.teardown()"
    a = root_cause({"invariant": "no loss", "where": "session 0 stream 3"}, plain)
    b = root_cause({"invariant": "no loss", "where": "session 2 stream 1"}, plain)
    c = root_cause({"invariant": "context preserved", "where": "session 0"}, plain)
    assert a == b == ("symptom", "no loss", "session N stream N") and c != a


def test_the_trigger_ignores_order_repetition_sessions_and_parameters():
    one = "state.drop(fault=Abort(), session=0)\nstate.outage(seconds=25.0)\nstate.drop(fault=Abort(), session=2)"
    two = "state.outage(seconds=4.0)\nstate.drop(fault=Abort(), session=1)"
    other = "state.drop(fault=HalfOpen(direction='s2c'), session=0)"
    assert trigger(one) == trigger(two) == ("drop(Abort)", "outage")
    assert trigger(other) == ("drop(HalfOpen)",)


def _failure(inv: str, where: str, program: str, worker: int = 0) -> Failure:
    record = failure_record(InvariantViolation(inv, where, "e", "a"))
    return Failure(worker=worker, seed=1, error_type="InvariantViolation", message=record["title"],
                   program=program, blob=None, machine="m:c", options={}, step_count=50, invariant=record)


def test_a_run_reports_each_root_cause_once_with_a_count():
    failures = [_failure(inv, where, program, worker=i) for i, (inv, where, program) in enumerate(ONE_BUG)]
    failures.append(_failure("no loss at quiescence", "session 0 stream 1", SEED5, worker=9))
    workers = [WorkerResult(worker=f.worker, seed=1, failures=[f]) for f in failures]
    result = FuzzResult(FuzzConfig(), workers, "", 1.0)
    assert len(result.all_failures) == 6 and len(result.failures) == 2
    causes = summary(result, ["failure-1", "failure-2"])["failures"]
    assert [c["count"] for c in causes] == [5, 1]
    first = causes[0]
    # led by its shortest program, the other four kept as duplicates
    assert first["title"] == "invariant session context preserved violated at session 0 (client side)"
    assert len(first["duplicates"]) == 4 and all(d["program"] for d in first["duplicates"])
    assert result.exit_code == 1


@pytest.mark.parametrize("shape", ["a", "b"])
def test_group_keeps_first_appearance_order(shape):
    fs = [_failure("x", "s", "state.drop(fault=Abort(), session=0)"), _failure("y", "s", "state.outage(seconds=4.0)")]
    if shape == "b":
        fs.reverse()
    assert [g[0].invariant["invariant"] for g in group(fs)] == [f.invariant["invariant"] for f in fs]
