"""Fixtures for the CLI tests: run `python -m statemodel` against the toy machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def dup_report(tmp_path_factory):
    """One CLI fuzz run of the toy machine with the `dup` mutant, written as a report."""
    base = tmp_path_factory.mktemp("dup")
    proc = statemodel("fuzz", "--mutant", "dup", "--examples", "200", "--seed", "1",
                      "--report", str(base / "report"), cwd=base)
    return base, proc
