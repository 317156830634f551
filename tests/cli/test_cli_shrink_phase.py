"""Shrinking is its own phase (issue 13 item 6): progress says which failure is being shrunk,
for how long and how short it got; shrinking has a budget that keeps what it found; and the
counts are true: examples generated, shrink runs and replays apart.

Uses the toy machine (milliseconds per example), in process, on fixed seeds."""

from __future__ import annotations

import io

import pytest
from cli_helpers import statemodel

from statemodel.fuzz.causes import program_steps
from statemodel.fuzz.config import FuzzConfig
from statemodel.fuzz.progress import Progress
from statemodel.fuzz.runner import run_worker

TOY = "toy_machine:machine_class"


def _hunt(shrink_budget, progress=None):
    config = FuzzConfig(mutants=("dup",), seed=1, examples=100, machine=TOY, shrink_budget=shrink_budget)
    return run_worker(config, progress=progress)


@pytest.fixture(scope="module")
def shrunk():
    """One hunt with unbounded shrinking, and every progress snapshot it sent."""
    snaps: list[dict] = []
    return _hunt(None, progress=lambda w, snap: snaps.append(snap)), snaps


def test_counts_are_true_examples_shrink_runs_and_replays_apart(shrunk):
    result, _ = shrunk
    [failure] = result.failures
    # seed 1 fails on its 5th example, one of which Hypothesis discarded unfinished; the
    # shrinker then ran hundreds of programs, which used to be counted as examples
    # (3,643 "examples" on a profile capped at 100)
    assert (result.examples, result.discarded) == (4, 1)
    assert result.shrink_runs > 100
    assert result.replays == 1  # Hypothesis' final replay of the shrunk program
    assert failure.shrunk and result.shrink_stopped is None
    assert result.steps < result.examples * 51  # generated steps only (50-step programs at most)


def test_progress_shows_the_shrink_phase_as_it_happens(shrunk):
    result, snaps = shrunk
    phases = [s["phase"] for s in snaps]
    assert phases[0] == "generate" and phases[-1] == "done"
    shrinking = [s for s in snaps if s["phase"] == "shrink"]
    assert shrinking, phases
    title = result.failures[0].title
    # the failure is announced when shrinking starts, not when it ends
    assert all(s["found"] == [title] for s in shrinking)
    assert all(s["examples"] == result.examples for s in shrinking)  # generation is over
    best = [s["shrink"]["best_steps"] for s in shrinking if s["shrink"]["best_steps"] is not None]
    assert best and best == sorted(best, reverse=True) and best[-1] < best[0]  # it got shorter
    assert {"seconds", "budget"} <= set(shrinking[-1]["shrink"])


def test_a_spent_shrink_budget_reports_the_smallest_program_found_so_far(shrunk):
    unshrunk, (shrunk, _) = _hunt(0), shrunk
    [u], [s] = unshrunk.failures, shrunk.failures
    assert unshrunk.shrink_stopped == "budget" and not u.shrunk and unshrunk.shrink_runs == 0
    assert u.reproduced and u.title == s.title  # still the same, reproducible failure
    assert program_steps(u.program) > program_steps(s.program)
    assert unshrunk.examples == shrunk.examples  # the same generated examples: the seed decides them


def test_progress_lines_name_the_failure_the_time_and_the_length():
    out = io.StringIO()
    with Progress(1, stream=out, interval=0, live=False) as p:
        p.update(0, {"examples": 5, "steps": 175, "phase": "generate", "found": []})
        p.update(0, {"examples": 5, "steps": 175, "shrink_runs": 40, "phase": "shrink",
                     "found": ["invariant x violated at session 0"],
                     "shrink": {"seconds": 12.0, "budget": 60.0, "best_steps": 7}})
    text = out.getvalue()
    assert "FOUND: invariant x violated at session 0; shrinking it" in text
    assert "[shrink " in text and "shrink runs=40" in text and "failures=1" in text
    assert "shrinking invariant x violated at session 0: 12s (budget 60s), smallest failing program so far 7 steps" in text


def test_the_cli_takes_a_shrink_budget_and_says_when_it_was_spent(tmp_path):
    proc = statemodel("fuzz", "--mutant", "dup", "--examples", "100", "--seed", "1", "--shrink-budget", "0",
                      cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "note: not shrunk (--shrink-budget 0)" in proc.stdout
    assert "examples 4 (1 more discarded unfinished), steps" in proc.stdout
    assert "shrink runs 0, replays" in proc.stdout
    bad = statemodel("fuzz", "--shrink-budget", "-1", cwd=tmp_path)
    assert bad.returncode == 2 and "must be 0 or more seconds" in bad.stderr


def test_rates_count_generating_time_only():
    from statemodel.fuzz.config import FuzzResult, WorkerResult

    workers = [WorkerResult(worker=0, seed=1, examples=4, steps=200, elapsed=10.0, shrink_seconds=8.0),
               WorkerResult(worker=1, seed=2, examples=30, steps=900, elapsed=10.0)]
    rates = FuzzResult(FuzzConfig(workers=2), workers, "", 10.0).rates
    assert rates == {"examples_per_s": 2.0 + 3.0, "steps_per_s": 100.0 + 90.0}
