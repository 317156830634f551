"""End to end through `python -m statemodel`: fuzz → reproducer → pytest → replay."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

from cli_helpers import cli_env, statemodel

INVARIANT = "delivered_is_prefix_of_sent"


def test_fuzz_finds_mutant_and_writes_report(dup_report):
    base, proc = dup_report
    assert proc.returncode == 1, proc.stderr
    assert f"FAILURE 1: invariant {INVARIANT} violated" in proc.stdout
    report = base / "report"
    summary = json.loads((report / "summary.json").read_text())
    assert summary["seed"] == 1 and summary["exit_code"] == 1
    assert summary["examples"] > 0 and summary["steps"] > 0
    assert summary["faults"].get("ToyFault", 0) > 0  # counted from recorder events
    [failure] = summary["failures"]
    assert failure["invariant"]["invariant"] == INVARIANT and failure["reproduced"] is True
    assert len(summary["trace_digest"]) == 64
    # the worker's RSS, read from /proc: the high-water mark and the second half's median
    memory = summary["memory"]
    assert 0 < memory["plateau_mib"] <= memory["peak_mib"] == summary["workers"][0]["memory"]["peak_mib"]
    assert f"worker RSS peak {memory['peak_mib']:.0f} MiB, plateau {memory['plateau_mib']:.0f} MiB" in proc.stdout
    folder = report / failure["folder"]
    assert {p.name for p in folder.iterdir()} >= {"repro_test.py", "trace.json", "timeline.html"}
    trace = json.loads((folder / "trace.json").read_text())
    assert trace["recording"]["violation"]["actual"] != trace["recording"]["violation"]["expected"]
    # shrunk: the minimum is send, deliver, drop, resume, deliver; unshrunk it has 25 steps
    assert len(trace["recording"]["steps"]) <= 8
    suite = ET.parse(report / "junit.xml").getroot()
    assert suite.get("failures") == "1"
    assert INVARIANT in suite.find("testcase/failure").get("message")


def test_repro_test_fails_with_same_invariant(dup_report):
    base, _ = dup_report
    repro = base / "report" / "failure-1" / "repro_test.py"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(repro)],
        cwd=base, env=cli_env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stdout
    assert "2 failed" in proc.stdout  # the printed program and the @reproduce_failure blob
    assert proc.stdout.count(f"AssertionError: {INVARIANT}") >= 2


def test_replay_prints_timeline_and_writes_html(dup_report):
    base, _ = dup_report
    html = base / "replayed.html"
    trace = json.loads((base / "report" / "failure-1" / "trace.json").read_text())
    first = trace["recording"]["steps"][0]
    proc = statemodel("replay", str(base / "report" / "failure-1"), "--html", str(html), cwd=base)
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    args = ", ".join(f"{k}={v}" for k, v in first["args"].items())
    assert f"#1 state.{first['rule']}({args})" in out
    assert "fault     ToyFault(kind='drop')" in out
    assert f"INVARIANT VIOLATED: {INVARIANT}" in out and "expected: [0]" in out and "actual:   [0, 0]" in out
    assert "is identical to the fuzz run's" in out  # bit-for-bit: same recording digest
    assert "<th>network</th>" in html.read_text()


def test_replay_of_fixed_code_passes(dup_report, tmp_path):
    base, _ = dup_report
    trace = json.loads((base / "report" / "failure-1" / "trace.json").read_text())
    trace["options"]["mutants"] = []  # the "fix"
    (tmp_path / "trace.json").write_text(json.dumps(trace))
    proc = statemodel("replay", str(tmp_path / "trace.json"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASSED" in proc.stdout


def test_same_seed_gives_same_trace_digest_across_processes(tmp_path):
    digests = []
    for run in ("a", "b"):
        proc = statemodel("fuzz", "--examples", "200", "--seed", "1", "--report", str(tmp_path / run),
                          cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        digests.append(json.loads((tmp_path / run / "summary.json").read_text())["trace_digest"])
    assert digests[0] == digests[1]
    other = statemodel("fuzz", "--examples", "200", "--seed", "2", "--report", str(tmp_path / "c"), cwd=tmp_path)
    assert json.loads((tmp_path / "c" / "summary.json").read_text())["trace_digest"] != digests[0]
    assert other.returncode == 0


def test_usage_and_infrastructure_errors_exit_2(tmp_path):
    bad = statemodel("fuzz", "--examples", "0", cwd=tmp_path)
    assert bad.returncode == 2 and "must be at least 1" in bad.stderr
    both = statemodel("fuzz", "--examples", "5", "--duration", "1", cwd=tmp_path)
    assert both.returncode == 2 and "not allowed with" in both.stderr
    missing = statemodel("fuzz", "--examples", "5", cwd=tmp_path,
                         env=cli_env(STATEMODEL_MACHINE="no_such_module_xyz:machine_class"))
    assert missing.returncode == 2
    assert "cannot import the state machine module 'no_such_module_xyz'" in missing.stderr
    assert "Traceback" not in missing.stderr
    mutant = statemodel("fuzz", "--examples", "5", "--mutant", "nope", cwd=tmp_path)
    assert mutant.returncode == 2 and "unknown mutant(s) ['nope']" in mutant.stderr
    nodb = statemodel("fuzz", "--examples", "5", "--db", "redis://127.0.0.1:1/0", cwd=tmp_path)
    assert nodb.returncode == 2 and "cannot reach Redis" in nodb.stderr
    noreplay = statemodel("replay", str(tmp_path / "nothing-here"), cwd=tmp_path)
    assert noreplay.returncode == 2 and "does not exist" in noreplay.stderr
    (tmp_path / "junk.json").write_text("[1, 2]")
    junk = statemodel("replay", str(tmp_path / "junk.json"), cwd=tmp_path)
    assert junk.returncode == 2 and "not a statemodel trace.json" in junk.stderr


def test_directory_database_replays_failure_in_fresh_process(tmp_path):
    db = tmp_path / "db"
    first = statemodel("fuzz", "--mutant", "dup", "--examples", "200", "--seed", "3", "--db", str(db), cwd=tmp_path)
    assert first.returncode == 1
    again = statemodel("fuzz", "--mutant", "dup", "--profile", "replay", "--seed", "99", "--db", str(db),
                       cwd=tmp_path)
    assert again.returncode == 1 and f"invariant {INVARIANT} violated" in again.stdout
    empty = statemodel("fuzz", "--mutant", "dup", "--profile", "replay", "--seed", "99",
                       "--db", str(tmp_path / "empty"), cwd=tmp_path)
    assert empty.returncode == 0  # nothing generated: the failure above came from the database
