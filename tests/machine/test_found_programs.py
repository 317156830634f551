"""Programs StreamMachine found against the correct reference implementation, kept as explicit
regressions: CI runs without the example database, so a fixed bug must stay fixed by a test
that replays its shrunk program step by step.

The programs live in the conformance corpus as data (``statemodel/conform/cases/kept_*.json``,
tag ``kept``; each holds the story of the bug it found), so other servers are checked against
them too, and ``statemodel conform add out/failure-N --name ... --section ...`` turns a new
failure into a case. Every case runs on the reference in tests/conform; this file runs the
kept ones, so a kept program that fails says so under its own name.
"""

from __future__ import annotations

import pytest

from statemodel.conform import load_cases, run_case

KEPT = [c for c in load_cases() if "kept" in c.tags]


def test_the_kept_programs_are_in_the_corpus():
    assert len(KEPT) >= 10


@pytest.mark.parametrize("case", KEPT, ids=lambda c: c.name)
def test_kept_program_passes_on_the_reference(case):
    result = run_case(case, "reference")
    assert result.verdict == "pass", f"{case.story}\n{result.message}"
