"""A Ctrl-C while shrinking keeps the smallest program so far, and the failure's note says it
was interrupted: it said "shrinking stopped after its 60 s budget; a longer --shrink-budget
may give a shorter program" 5 s into a 60 s budget, sending the user after the wrong knob."""

from __future__ import annotations

from statemodel.cli.fuzz import print_failures
from statemodel.fuzz.config import FuzzConfig, FuzzResult
from statemodel.fuzz.runner import run_worker


def test_a_shrink_cut_short_by_ctrl_c_says_so_not_that_its_budget_ran_out(monkeypatch, capsys):
    monkeypatch.delenv("STATEMODEL_MACHINE", raising=False)
    config = FuzzConfig(mutants=("no_dedupe",), seed=1, examples=50, profile="hunt", shrink_budget=60.0)
    shrinking = []
    # Ctrl-C sets the flag should_stop() reads (fuzz/workers.py): here it is set as shrinking starts
    result = run_worker(config, progress=lambda w, snap: shrinking.append(snap["phase"] == "shrink"),
                        should_stop=lambda: any(shrinking))
    assert result.shrink_stopped == "interrupted" and result.interrupted and len(result.failures) == 1
    print_failures(FuzzResult(config, [result], result.trace_digest, result.elapsed), None)
    out = capsys.readouterr().out
    assert "note: shrinking was interrupted; the same command (same --seed) may give a shorter program" in out
    assert "budget" not in out


def test_progress_says_the_replay_after_ctrl_c_follows_an_interruption_not_a_spent_budget(monkeypatch):
    import io

    from statemodel.fuzz.progress import Progress

    monkeypatch.delenv("STATEMODEL_MACHINE", raising=False)
    config = FuzzConfig(mutants=("no_dedupe",), seed=1, examples=50, profile="hunt", shrink_budget=60.0)
    out, shrinking = io.StringIO(), []
    with Progress(1, stream=out, interval=0.0, live=False) as progress:
        def seen(worker, snap):
            shrinking.append(snap["phase"] == "shrink")
            progress.update(worker, snap)

        run_worker(config, progress=seen, should_stop=lambda: any(shrinking))
    printed = out.getvalue()
    assert "interrupted, replaying the smallest program" in printed
    assert "budget spent" not in printed
