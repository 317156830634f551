"""Fixtures for the CLI tests (helpers they share live in cli_helpers.py)."""

from __future__ import annotations

import pytest
from cli_helpers import statemodel


@pytest.fixture(scope="session")
def dup_report(tmp_path_factory):
    """One CLI fuzz run of the toy machine with the `dup` mutant, written as a report."""
    base = tmp_path_factory.mktemp("dup")
    proc = statemodel("fuzz", "--mutant", "dup", "--examples", "200", "--seed", "1",
                      "--report", str(base / "report"), cwd=base)
    return base, proc
