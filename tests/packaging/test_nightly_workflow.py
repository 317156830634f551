"""The nightly workflow is a real file whose commands work here, in a scaled-down form.

The form, stated once: `pip install` and `apt-get` lines are not run (this environment is
installed; .ci/run installs apt packages); `--duration 3600 --workers 4` becomes one second on
one worker and the report goes to a scratch folder; the Redis service becomes the test Redis
(STATEMODEL_REDIS_URL; the fuzz step is skipped without one, and said so at the end of the
run); GitHub expressions become values; the long tests' command only collects one test file
(`--collect-only`): its profile and marker must be valid, and running them is what the
workflow is for.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"
BIN = Path(sys.executable).parent
REDIS = os.environ.get("STATEMODEL_REDIS_URL")


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _runs(job: str) -> list[str]:
    return [step["run"] for step in _workflow()["jobs"][job]["steps"] if "run" in step]


def test_the_workflow_is_scheduled_with_the_nightly_profile_and_redis():
    wf = _workflow()
    triggers = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads a bare `on` as true
    assert triggers["schedule"][0]["cron"]
    fuzz = wf["jobs"]["fuzz"]
    assert fuzz["services"]["redis"]["image"].startswith("redis")
    [command] = [r for r in _runs("fuzz") if r.startswith("statemodel fuzz")]
    assert "--profile nightly" in command and "--db redis://127.0.0.1:6379/0" in command
    assert "--report fuzz-report" in command
    uploads = [s for s in fuzz["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert uploads and uploads[0]["if"] == "always()" and uploads[0]["with"]["path"] == "fuzz-report"
    assert wf["jobs"]["slow-tests"]["env"]["STATEMODEL_REDIS_URL"] == "redis://127.0.0.1:6379/0"


def _scaled(command: str, scratch: Path) -> str | None:
    if command.startswith(("pip install", "sudo apt-get")):
        return None
    command = command.replace("--duration 3600", "--duration 1").replace("--workers 4", "--workers 1")
    command = command.replace("--report fuzz-report", f"--report {scratch / 'fuzz-report'}")
    command = re.sub(r"\$\{\{\s*github\.run_number\s*\}\}", "1", command)
    if REDIS:
        command = command.replace("redis://127.0.0.1:6379/0", REDIS)
    if command.startswith("pytest "):
        command += " --collect-only -q tests/docs/test_readme.py"  # holds a slow test
    return command


@pytest.mark.parametrize("job", ["fuzz", "slow-tests"])
def test_the_workflow_commands_run_here_scaled_down(job, tmp_path, request):
    commands = [c for c in (_scaled(r, tmp_path) for r in _runs(job)) if c]
    assert commands, f"nothing to run in job {job}"
    if job == "fuzz" and not REDIS:
        request.applymarker(pytest.mark.redis)
        pytest.skip("STATEMODEL_REDIS_URL is unset")
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("STATEMODEL_MACHINE", None)
    for command in commands:
        proc = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    if job == "fuzz":
        assert (tmp_path / "fuzz-report" / "summary.json").is_file()
        assert (tmp_path / "fuzz-report" / "junit.xml").is_file()
