"""--workers: distinct seeds, one shared database, merged results, clean Ctrl-C."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from cli_helpers import cli_env, statemodel


def test_two_workers_merge_results_deterministically(tmp_path):
    summaries = []
    for run in ("a", "b"):
        proc = statemodel("fuzz", "--workers", "2", "--examples", "100", "--seed", "7",
                          "--report", str(tmp_path / run), cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        summaries.append(json.loads((tmp_path / run / "summary.json").read_text()))
    s = summaries[0]
    assert [w["seed"] for w in s["workers"]] == [7, 8]
    assert all(w["examples"] > 0 and w["error"] is None for w in s["workers"])
    assert s["examples"] == sum(w["examples"] for w in s["workers"])
    assert s["steps"] == sum(w["steps"] for w in s["workers"])
    assert s["workers"][0]["trace_digest"] != s["workers"][1]["trace_digest"]  # distinct seeds
    assert s["trace_digest"] == summaries[1]["trace_digest"]


def test_workers_share_database_and_union_failures(tmp_path):
    proc = statemodel("fuzz", "--workers", "2", "--mutant", "dup", "--examples", "200", "--seed", "1",
                      "--db", str(tmp_path / "db"), "--report", str(tmp_path / "r"), cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    # both workers find the bug; identical shrunk failures are merged into one reproducer
    assert all(w["error"] is None for w in s["workers"])
    assert len(s["failures"]) >= 1
    assert {f["invariant"]["invariant"] for f in s["failures"]} == {"delivered_is_prefix_of_sent"}
    assert any((tmp_path / "db").rglob("*"))  # failures landed in the shared directory database


def test_duration_runs_batches_then_stops(tmp_path):
    proc = statemodel("fuzz", "--duration", "0.5", "--seed", "4", "--report", str(tmp_path / "r"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["examples"] >= 1 and not s["interrupted"]  # ends between examples once time is up
    assert s["config"]["duration"] == 0.5


@pytest.mark.parametrize(
    ("sig", "to_group", "workers"),
    [(signal.SIGINT, True, 2), (signal.SIGINT, False, 2), (signal.SIGTERM, False, 1)],
    ids=["terminal-ctrl-c", "sigint-to-parent-only", "ci-runner-sigterm"],
)
def test_ctrl_c_stops_all_workers_and_keeps_partial_results(tmp_path, sig, to_group, workers):
    proc = subprocess.Popen(
        [sys.executable, "-m", "statemodel", "fuzz", "--workers", str(workers), "--duration", "120", "--seed", "1",
         "--progress-interval", "0.2", "--report", str(tmp_path / "r")],
        cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        seen = ""
        give_up = time.monotonic() + 60  # bound only; the test never asserts on timing
        while "examples=" not in seen or "examples=0 " in seen.splitlines()[-1]:
            assert time.monotonic() < give_up, f"no progress from the workers: {seen!r}"
            ready, _, _ = select.select([proc.stderr], [], [], 1.0)
            if ready:
                seen += proc.stderr.readline()
        if to_group:
            os.killpg(proc.pid, sig)  # what a terminal's Ctrl-C does to the process group
        else:
            os.kill(proc.pid, sig)  # e.g. a CI runner cancelling only the main process
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    assert proc.returncode == 2, err
    assert "interrupted" in err and "Traceback" not in err
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["interrupted"] is True
    assert len(s["workers"]) == workers and all(w["interrupted"] for w in s["workers"])
    assert s["examples"] > 0


def test_examples_run_in_batches_that_bound_hypothesis_memory(monkeypatch):
    """--examples above MAX_BATCH runs several Hypothesis runs with fresh seeds: one run keeps
    its last 10,000 results in memory, which grew a 20,000-example worker past 4 GB."""
    from statemodel.fuzz import runner
    from statemodel.fuzz.config import FuzzConfig

    sizes, seeds = [], []
    real = runner.run_state_machine_as_test

    def spy(factory, settings):
        sizes.append(settings.max_examples)
        seeds.append(factory._hypothesis_internal_use_seed)
        return real(factory, settings=settings)

    monkeypatch.setattr(runner, "MAX_BATCH", 30)
    monkeypatch.setattr(runner, "run_state_machine_as_test", spy)
    monkeypatch.syspath_prepend(os.path.dirname(__file__))
    result = runner.run_worker(FuzzConfig(examples=70, seed=3, machine="toy_machine:machine_class"))
    assert sizes == [30, 30, 10]
    assert seeds == [runner.batch_seed(3, b) for b in range(3)] and len(set(seeds)) == 3
    assert result.examples >= 70 and not result.failures


def test_more_workers_than_examples_runs_the_examples_asked_for(tmp_path, capsys, monkeypatch):
    """Every worker runs one example at least: `--workers 3 --examples 2` ran 3 examples."""
    from statemodel.cli import main

    monkeypatch.delenv("STATEMODEL_MACHINE", raising=False)
    assert main(["fuzz", "--workers", "3", "--examples", "2", "--seed", "1", "--report", str(tmp_path / "r")]) == 0
    captured = capsys.readouterr()
    assert "note: 2 example(s) need no more than 2 worker(s), not 3" in captured.err
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["examples"] == 2 and len(summary["workers"]) == 2
    # the generating rate is the workers' own rates summed; the wall rate is printed beside it
    assert "steps/s generating (the sum of 2 workers' own); " in captured.out
    assert summary["steps_per_s_wall"] == pytest.approx(summary["steps"] / summary["elapsed"], rel=0.01)
    assert f"{summary['steps_per_s_wall']:.1f} steps/s over the run's" in captured.out
