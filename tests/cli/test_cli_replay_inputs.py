"""`statemodel replay` of reproducers a user may really hold: one whose server is down, one
edited by hand. Each is an error of the replay (exit 2, one line), never a verdict on the
target (exit 1 "FAILED") and never a traceback."""

from __future__ import annotations

import json
import socket

import pytest

from statemodel.cli import main

PROGRAM = "state = StreamMachine_tcp()\nstate.teardown()"


@pytest.fixture(autouse=True)
def _real_machine(monkeypatch):
    monkeypatch.delenv("STATEMODEL_MACHINE", raising=False)


def _trace(tmp_path, **fields) -> str:
    trace = {"machine": "statemodel.machine:machine_class",
             "options": {"target": "reference", "transport": "sim", "mutants": []},
             "program": "state = StreamMachine_sim()\nstate.teardown()"}
    trace.update(fields)
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(trace))
    return str(path)


def test_a_ws_reproducer_whose_server_is_down_is_an_error_not_a_failure(tmp_path, capsys):
    with socket.socket() as held:  # bound, never listening: connecting is refused, the port stays ours
        held.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{held.getsockname()[1]}/#shared=1"
        path = _trace(tmp_path, options={"target": url, "transport": "tcp", "mutants": []}, program=PROGRAM)
        assert main(["replay", path]) == 2
    captured = capsys.readouterr()
    assert "FAILED" not in captured.out and "recovery within bound" not in captured.out
    assert captured.err.startswith(f"statemodel replay: error: target {url}: cannot connect")


@pytest.mark.parametrize("fields, message", [
    ({"machine": 5}, "machine must be a string, got 5"),
    ({"options": {"target": "reference", "transport": "sim", "mutants": "no_dedupe"}},
     'options.mutants must be a list of names, got "no_dedupe"'),
    ({"options": {"target": ["reference"], "transport": "sim"}}, "options.target must be a string"),
], ids=["machine-int", "mutants-string", "target-list"])
def test_a_hand_edited_trace_with_a_wrong_type_names_the_field(fields, message, tmp_path, capsys):
    assert main(["replay", _trace(tmp_path, **fields)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("statemodel replay: error:") and message in err


def test_a_hand_edited_repro_test_py_with_a_wrong_type_names_the_field(tmp_path, capsys):
    path = tmp_path / "repro_test.py"
    path.write_text("MACHINE = 5\nOPTIONS = {'target': 'reference', 'transport': 'sim', 'mutants': []}\n"
                    "PROGRAM = 'state = StreamMachine_sim()\\nstate.teardown()'\nEXPECTED_ERROR = ('E', 'm')\n")
    assert main(["replay", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("statemodel replay: error:") and "machine must be a string, got 5" in err
