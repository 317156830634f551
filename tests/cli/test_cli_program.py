"""Extracting, parsing and running the step program Hypothesis prints for a failure."""

import pytest
from toy_machine import MachineOptions, machine_class

from statemodel.report.program import (
    ProgramError,
    blob_from_notes,
    parse_program,
    program_from_notes,
    run_program,
)

NOTES = [
    "Failing test case: <state machine>",
    "state = ToyMachine()",
    "state.send(msg=0)",
    "state.teardown()",
    "\nYou can reproduce this test case by temporarily adding "
    "@reproduce_failure('6.170.17', b'AAEC') as a decorator on your test function",
]


def test_program_and_blob_from_notes():
    assert program_from_notes(NOTES) == "state = ToyMachine()\nstate.send(msg=0)\nstate.teardown()"
    assert blob_from_notes(NOTES) == ("6.170.17", "b'AAEC'")
    assert program_from_notes(["some other note"]) is None


def test_parse_program_rejects_non_programs():
    assert parse_program("state = M()\nstate.a(x=[1,\n 2])\nstate.teardown()") == ("M", ["state.a(x=[1,\n 2])"])
    with pytest.raises(ProgramError, match="must start with"):
        parse_program("import os")
    with pytest.raises(ProgramError, match="not valid Python"):
        parse_program("state = (")


def test_run_program_reproduces_and_records():
    program = (
        "state = ToyMachine()\nstate.send(msg=3)\nstate.deliver()\n"
        "state.inject(fault=ToyFault(kind='drop'))\nstate.resume()\nstate.send(msg=4)\n"
        "state.deliver()\n"
        "state.delivered_is_prefix_of_sent()\nstate.teardown()"
    )
    buggy = run_program(machine_class(MachineOptions(mutants=frozenset({"dup"}), record=True)), program)
    assert isinstance(buggy.error, AssertionError)
    assert buggy.state.recorder.violated["actual"] == [3, 3]
    fixed = run_program(machine_class(MachineOptions(record=True)), program)
    assert fixed.error is None
    assert [s["rule"] for s in fixed.state.recorder.steps] == ["send", "deliver", "inject", "resume", "send", "deliver"]
