"""The same CLI path against the real StreamMachine (skipped until statemodel.machine imports)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cli_helpers import cli_env, statemodel


def _machine_import_error() -> str | None:
    try:
        import statemodel.machine  # noqa: F401
    except Exception as exc:  # any import failure means "not ready yet"
        return f"statemodel.machine does not import yet: {type(exc).__name__}: {exc}"
    return None


REASON = _machine_import_error()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def real_env() -> dict[str, str]:
    env = cli_env()
    env.pop("STATEMODEL_MACHINE")
    return env


@pytest.mark.timeout(240)
def test_real_machine_same_seed_same_digest(tmp_path):
    digests = []
    for run in ("a", "b"):
        proc = statemodel("fuzz", "--examples", "20", "--seed", "1", "--report", str(tmp_path / run),
                          cwd=tmp_path, env=real_env(), timeout=200)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        s = json.loads((tmp_path / run / "summary.json").read_text())
        assert s["steps"] > 0
        digests.append(s["trace_digest"])
    assert digests[0] == digests[1]


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("STATEMODEL_RUN_SLOW"),
                    reason="minutes on the real machine today; set STATEMODEL_RUN_SLOW=1 (nightly)")
@pytest.mark.timeout(900)
def test_real_machine_mutant_gives_runnable_reproducer(tmp_path):
    proc = statemodel("fuzz", "--mutant", "inflight_per_connection", "--examples", "300", "--seed", "1",
                      "--report", str(tmp_path / "r"), cwd=tmp_path, env=real_env(), timeout=800)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    failure = s["failures"][0]
    assert failure["reproduced"] is True
    repro = tmp_path / "r" / failure["folder"] / "repro_test.py"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k",
                          "shrunk_program", str(repro)],
                         cwd=tmp_path, env=real_env(), capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "1 failed" in run.stdout, run.stdout[-3000:]
    assert failure["error_type"] in run.stdout
    replay = statemodel("replay", str(tmp_path / "r" / failure["folder"]), cwd=tmp_path, env=real_env())
    assert replay.returncode == 1 and "is identical to the fuzz run's" in replay.stdout, replay.stdout[-3000:]
