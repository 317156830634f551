"""A sim replay is bit for bit: the same program records the same in every process, and a
replay records what the fuzz run recorded (issue 13 item 5).

Outside a Hypothesis test case nothing seeded trio's scheduler RNG (Hypothesis seeds it, as a
registered random, only inside one), so same-timestamp events came out in a new order on
every replay (kept_programs.SEED5 replayed with a new digest each time).
"""

from __future__ import annotations

import json
import subprocess
import sys

from cli_helpers import statemodel
from kept_programs import MUTANTS, SEED5

RECORD = """
import sys
from statemodel.machine import MachineOptions, machine_class
from statemodel.report.program import run_program
cls = machine_class(MachineOptions(mutants=frozenset(sys.argv[1].split(",")), record=True))
outcome = run_program(cls, sys.stdin.read())
print(type(outcome.error).__name__, outcome.state.recorder.digest())
"""


def _record_in_fresh_process(program: str, mutants: list[str]) -> str:
    proc = subprocess.run([sys.executable, "-c", RECORD, ",".join(mutants)], input=program,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_a_printed_program_records_the_same_in_fresh_processes():
    runs = {_record_in_fresh_process(SEED5, MUTANTS) for _ in range(2)}
    assert len(runs) == 1, runs
    assert runs.pop().startswith("InvariantViolation ")  # and it still finds the bug


def test_a_replay_records_exactly_what_the_fuzz_run_recorded(tmp_path):
    env = {k: v for k, v in __import__("os").environ.items() if k != "STATEMODEL_MACHINE"}
    fuzz = statemodel("fuzz", "--mutant", "no_dedupe", "--seed", "1", "--examples", "50", "--shrink-budget", "0", "--profile", "hunt",
                      "--report", str(tmp_path / "r"), cwd=tmp_path, env=env)
    assert fuzz.returncode == 1, fuzz.stdout + fuzz.stderr
    trace = json.loads((tmp_path / "r" / "failure-1" / "trace.json").read_text())
    # Hypothesis' own last run of the failing program recorded the same as the re-run outside it
    assert trace["replay_matches"] is True
    # and so does a replay in a fresh process
    replay = statemodel("replay", str(tmp_path / "r" / "failure-1"), cwd=tmp_path, env=env)
    assert replay.returncode == 1, replay.stdout + replay.stderr
    assert f"is identical to the fuzz run's ({trace['recording_digest'][:16]}" in replay.stdout
