"""`statemodel mutants` is the proof that the tester works: when a mutant escapes its budget,
it says which one and how to hunt it longer (and exits 1)."""

from __future__ import annotations

from statemodel.cli import main
from statemodel.cli.mutants import escaped_hint
from statemodel.mutants import HuntResult


def _result(name: str, caught: bool) -> HuntResult:
    return HuntResult(name=name, bug_class="a bug", caught=caught, seconds=30.2, examples=812,
                      shrunk_steps=3 if caught else None, invariant="x" if caught else None,
                      program="state = M()" if caught else None)


def test_an_escaped_mutant_is_named_with_the_commands_that_hunt_it_longer():
    hint = escaped_hint(_result("no_fencing", False), budget=30.0, seed_value=0)
    assert hint.startswith("mutant no_fencing escaped: no failure in 30 s (812 examples, budget 30 s)")
    assert "statemodel mutants no_fencing --budget 300" in hint
    assert "statemodel fuzz --mutant no_fencing --duration 300 --seed 0 --report out" in hint


def test_the_command_exits_1_and_says_so_for_each_escaped_mutant(monkeypatch, capsys):
    def fake_hunt_all(names, budget, seed, on_result=None):
        results = [_result("no_dedupe", True), _result("no_fencing", False)]
        for r in results:
            on_result(r)
        return results

    monkeypatch.setattr("statemodel.mutants.hunt_all", fake_hunt_all)
    assert main(["mutants", "no_dedupe", "no_fencing", "--budget", "30"]) == 1
    captured = capsys.readouterr()
    assert "caught 1/2" in captured.out
    [line] = [l for l in captured.err.splitlines() if "escaped" in l]
    assert line.startswith("statemodel mutants: mutant no_fencing escaped") and "--budget 300" in line
