"""Smoke test of `statemodel bench --quick --json`: it runs end to end and reports every
figure with its anchor, target and verdict. Structure only: nothing here is about speed."""

from __future__ import annotations

import json
import subprocess
import sys

EXPECTED = {
    "sim_step_rate", "resume_p50", "resume_p99", "throughput_2mib", "proxy_added_rtt_p50",
    "proxy_throughput", "server_peak_rss", "mutants_caught", "mutant_max_seconds",
    "mutant_median_seconds", "mutant_max_shrunk_steps", "tcp_step_rate", "tcp_fuzz_rate", "fuzz_worker_rss",
}


def test_quick_json_reports_every_figure_with_anchor_target_and_verdict() -> None:
    proc = subprocess.run([sys.executable, "-m", "statemodel", "bench", "--quick", "--json"],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["quick"] is True
    assert {"nproc", "cpu", "python", "packages"} <= set(result["host"])
    figures = {f["name"]: f for f in result["figures"]}
    assert set(figures) == EXPECTED
    for f in figures.values():
        assert {"what", "value", "unit", "anchor", "ratio", "target", "met"} <= set(f)
        subject, op, bound = f["target"].split()
        assert subject in ("value", "ratio") and op in ("<=", ">=")
        float(bound)
        assert f["met"] in (True, False, None)
        if f["anchor"] is not None and f["value"] is not None:
            assert f["ratio"] == f["value"] / f["anchor"]
    # the measured side really ran: steps were counted, resumes happened, responses arrived intact
    assert result["details"]["steprate"]["stream"]["steps"] > 0
    assert result["details"]["steprate"]["bare"]["steps"] > 0
    assert result["details"]["loopback"]["reconnect"]["samples"] > 0
    memory = result["details"]["memory"]
    assert memory["responses_ok"] == memory["clients"]
    # every client was cut once mid-response and resumed: exact on any machine, since the cut
    # never reads past its budget, which is below the response size (test_bench_cut.py)
    assert memory["connects"] >= 2 * memory["clients"]
    assert result["details"]["realnet"]["tcp"]["real"]["steps"] > 0
    fuzz_rate = result["details"]["fuzz_tcp"]
    assert fuzz_rate["single"]["workers"] == 1 and fuzz_rate["many"]["workers"] == 2
    assert fuzz_rate["many"]["examples"] == 2 * fuzz_rate["single"]["examples"] > 0
    assert len(result["details"]["mutants"]["results"]) == result["details"]["mutants"]["mutants"] > 0
    fuzz = result["details"]["fuzzmem"]
    assert fuzz["examples"] > 0 and 0 < fuzz["plateau_mib"] <= fuzz["peak_mib"] and fuzz["anchor_mib"] > 0


def test_percentile_is_nearest_rank() -> None:
    from statemodel.bench.loopback import percentile

    samples = [float(i) for i in range(1, 101)]  # 1..100
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile(samples, 100) == 100.0
    assert percentile([7.0], 99) == 7.0


def test_program_steps_counts_rules_not_invariants_or_teardown() -> None:
    from statemodel.fuzz.causes import program_steps

    program = "\n".join([
        "state = StreamMachine_sim()",
        "streams_0 = state.boot(seed=0, chunks=[])",
        "state.invariants_hold()",
        "state.connect()",
        "state.invariants_hold()",
        "state.drop(fault=Abort(), session=0)",
        "state.invariants()",
        "state.teardown()",
    ])
    assert program_steps(program) == 3


def test_figure_verdicts_follow_the_target() -> None:
    from statemodel.bench.figures import figure

    assert figure("x", "", 2.0, "s", ("ratio", "<=", 3.0), anchor=1.0)["met"] is True
    assert figure("x", "", 4.0, "s", ("ratio", "<=", 3.0), anchor=1.0)["met"] is False
    assert figure("x", "", 0.4, "-", ("value", ">=", 0.5))["met"] is False
    assert figure("x", "", None, "-", ("value", ">=", 0.5))["met"] is None


def test_the_scaling_program_runs_its_work_and_the_model_checks_every_message() -> None:
    """Structure of the scaling table's cells: 2 sessions x 5 streams (above the machine's
    4, raised for the bench), every message delivered (settle and teardown check it)."""
    from statemodel.bench.scaling import ROUNDS, program
    from statemodel.machine import MachineOptions, machine_class

    base = machine_class(MachineOptions())
    cls = type(base.__name__, (base,), {"max_streams_per_session": 5, "__module__": base.__module__})
    steps = program(cls, sessions=2, streams=5, size=1000, rounds=1)
    # boot, 1 connect, 9 more streams, one round of 10 emits and an advance, settle
    assert steps == 1 + 1 + 9 + (10 + 1) + 1
    assert ROUNDS >= 1


def test_a_scaling_cell_in_its_own_process_reports_rate_anchor_and_rss() -> None:
    from statemodel.bench.scaling import cell_in_process

    cell = cell_in_process(1, 1, 1024, timeout=120)
    assert "error" not in cell, cell
    assert cell["steps"] > 0 and cell["cpu_seconds"] > 0 and cell["bare_steps_per_cpu_s"] > 0
    assert abs(cell["ratio"] - cell["steps_per_cpu_s"] / cell["bare_steps_per_cpu_s"]) < 1e-3
    assert cell["peak_rss_mib"] >= cell["rss_before_mib"] > 0
