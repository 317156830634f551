"""``repro_test.py``: a runnable pytest file for one failure.

Test 1 runs the shrunk step program exactly as Hypothesis printed it (teardown in a
``finally``); test 2 hands the ``@reproduce_failure`` blob back to Hypothesis. The module
also carries MACHINE / OPTIONS / PROGRAM constants that ``statemodel replay`` reads.
"""

from __future__ import annotations

import importlib
import textwrap

from statemodel.fuzz.config import Failure
from statemodel.report.program import parse_program


def _options_module(machine_module: str) -> str:
    try:
        module = importlib.import_module(machine_module)
    except ImportError:
        return "statemodel.machine"
    return machine_module if hasattr(module, "MachineOptions") else "statemodel.machine"


def render_repro(failure: Failure, folder_name: str) -> str:
    module, _, attr = failure.machine.partition(":")
    class_name, body = parse_program(failure.program)
    opts = failure.options
    mutants = "frozenset(%r)" % (sorted(opts["mutants"]),) if opts["mutants"] else "frozenset()"
    steps = "\n".join(body) if body else "pass"
    title = failure.title.replace('"""', "'''")
    return f'''"""Reproducer written by `statemodel fuzz`: {title}.

Run it with `pytest {folder_name}/repro_test.py`, or `statemodel replay {folder_name}` for a
step-by-step timeline. Seed {failure.seed} (worker {failure.worker}).
"""

import pytest
from hypothesis import reproduce_failure, settings
from hypothesis.stateful import run_state_machine_as_test

from {module} import {attr} as machine_class
from {_options_module(module)} import MachineOptions
from statemodel.report.program import program_namespace

MACHINE = {failure.machine!r}
OPTIONS = {opts!r}
STEP_COUNT = {failure.step_count!r}
BLOB = {("(%r, %s)" % (failure.blob[0], failure.blob[1])) if failure.blob else None}
EXPECTED_ERROR = {(failure.error_type, failure.message)!r}
PROGRAM = {failure.program!r}

{class_name} = machine_class(
    MachineOptions(target={opts["target"]!r}, transport={opts["transport"]!r}, mutants={mutants}, record=True)
)
# Names the printed rule arguments use (fault classes, payload types, ...).
globals().update(program_namespace({class_name}, {class_name!r}))


def test_shrunk_program():
    """The shrunk step program, exactly as Hypothesis printed it."""
    state = {class_name}()
    try:
{textwrap.indent(steps, " " * 8)}
    finally:
        state.teardown()


@pytest.mark.skipif(BLOB is None, reason="Hypothesis printed no @reproduce_failure blob")
def test_reproduce_failure_blob():
    """The same failure through Hypothesis itself (needs the same Hypothesis version)."""

    def factory():
        return {class_name}()

    run_state_machine_as_test(
        reproduce_failure(*BLOB)(factory),
        settings=settings(database=None, deadline=None, print_blob=True, stateful_step_count=STEP_COUNT),
    )
'''
