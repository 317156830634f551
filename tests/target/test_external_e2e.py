"""The real StreamMachine against a server in another process, through the loopback proxy.

The server is ``statemodel serve --app script`` (what any PROTOCOL.md server runs for the
tester); the machine reaches it only by its ws:// URL, as it would reach yours.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from statemodel.machine import MachineOptions, machine_class
from statemodel.model import InvariantViolation

from script_server import script_server

HERE = Path(__file__).parent
REPO = HERE.parent.parent


def test_reference_server_over_tcp_passes(script_server_url: str) -> None:
    cls = machine_class(MachineOptions(target=script_server_url, transport="tcp"))
    assert cls.real_time
    connects = []

    class Counted(cls):  # the real machine; only counts what went through the proxy
        def teardown(self):
            try:
                super().teardown()
            finally:
                if self.target is not None:
                    connects.append(len(self.target.net.trace.of_kind("connect")))

    run_state_machine_as_test(Counted, settings=settings(max_examples=3, stateful_step_count=8, deadline=None,
                                                         database=None, phases=[Phase.generate],
                                                         derandomize=True))
    # Which rules Hypothesis draws is not this test's point: one explicit program proves the
    # sessions really dial the server through the proxy and stream end to end.
    state = Counted()
    try:
        state.boot(seed=0, chunks=[{"kind": "text", "seed": 1, "chars": 100}])
        state.settle()
    finally:
        state.teardown()
    assert connects[-1] > 0, connects


@pytest.mark.slow  # about 80 s: found within the first derandomized examples
@pytest.mark.timeout(900)
def test_server_accepting_forged_resume_tokens_is_caught_over_tcp() -> None:
    """A server-side bug (mutant ``token_not_checked``) seen only through the wire.

    ``no_dedupe`` is not used here: with only the server mutated it cannot be observed,
    because a correct client resends only what the server reported missing and drops
    replayed duplicates itself."""
    with script_server("token_not_checked") as url:
        cls = machine_class(MachineOptions(target=url, transport="tcp"))
        with pytest.raises(InvariantViolation, match="forged resume tokens are refused"):
            run_state_machine_as_test(cls, settings=settings(
                max_examples=100, stateful_step_count=30, deadline=None, database=None, derandomize=True,
                phases=[Phase.generate], report_multiple_bugs=False,
                suppress_health_check=list(HealthCheck)))


def test_fuzz_cli_against_a_ws_url(script_server_url: str, tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("STATEMODEL_MACHINE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "statemodel", "fuzz", "--target", script_server_url, "--transport", "tcp",
         "--examples", "3", "--profile", "hunt", "--seed", "3", "--report", str(tmp_path / "report")],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert f"target {script_server_url} over tcp" in out
    counts = re.search(r"examples (\d+)(?: \(\d+ more discarded unfinished\))?, steps (\d+), .*failures 0", out)
    assert re.search(r"rate \d+\.\d+ examples/s, \d+\.\d steps/s", out), out[-2000:]
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["steps_per_s"] > 0 and summary["examples_per_s"] > 0
    assert counts and int(counts[1]) >= 3 and int(counts[2]) > 0, out[-2000:]
    faults = re.findall(r"faults: (.*?) slowest", out)  # counts so far: the last line has them all
    applied = faults and [f for f in faults[-1].split(", ") if not f.startswith("Heal=")]
    assert applied, out[-2000:]  # faults went through the proxy


def test_fuzz_cli_ws_url_on_sim_is_an_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "statemodel", "fuzz", "--target", "ws://127.0.0.1:9/", "--examples", "1",
         "--report", str(tmp_path / "report")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode != 0
    assert "--transport tcp" in proc.stdout + proc.stderr
