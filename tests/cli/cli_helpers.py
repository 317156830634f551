"""Helpers for the CLI tests: run `python -m statemodel` against the toy machine.

A named module, not conftest.py: test files import these, and several test directories have
a conftest.py (whichever pytest imported last would answer `from conftest import`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOY = "toy_machine:machine_class"


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["STATEMODEL_MACHINE"] = TOY
    env.update(extra)
    return env


def statemodel(*args: str, cwd: Path, timeout: float = 120, env: dict | None = None):
    """Run the CLI in a fresh process (bounded); returns CompletedProcess with text output."""
    return subprocess.run(
        [sys.executable, "-m", "statemodel", *args], cwd=cwd, env=env or cli_env(),
        capture_output=True, text=True, timeout=timeout,
    )
