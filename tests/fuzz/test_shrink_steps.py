"""Shrinking deletes whole steps first (statemodel.fuzz.shrink): counted in test runs with a
fixed seed, never in seconds."""

from __future__ import annotations

from hypothesis import Phase, settings, strategies as st
from hypothesis.errors import Flaky
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from statemodel.fuzz import shrink

SETTINGS = settings(max_examples=500, stateful_step_count=30, derandomize=True, database=None, deadline=None,
                    phases=(Phase.generate, Phase.shrink), report_multiple_bugs=False)


def _shrink(steps_first: bool, stall: int | None = None) -> tuple[int, list[str]]:
    """Shrink a failure that needs two particular steps, among programs whose other steps each
    draw a few choices (as StreamMachine's do); return the test runs and the final program."""
    counts = {"runs": 0}

    class Machine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            counts["runs"] += 1
            self.log = []

        @initialize(seed=st.integers(0, 2**16 - 1))
        def boot(self, seed):
            self.log.append("boot")

        @rule(chunks=st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 255), st.integers(0, 2**20)), max_size=4))
        def emit(self, chunks):
            self.log.append("emit")

        @rule(seconds=st.sampled_from([0.01, 0.1, 1.0]))
        def advance(self, seconds):
            self.log.append("advance")

        @rule(data=st.sampled_from(["", "hi", "x" * 20]), twice=st.booleans())
        def echo(self, data, twice):
            self.log.append("echo")

        @rule(session=st.integers(0, 2), value=st.sampled_from([0, 1, "v"]))
        def set_context(self, session, value):
            self.log.append("set_context")

        @rule()
        def drop(self):
            self.log.append("drop")

        @rule()
        def resume(self):
            # the bug: a resume after a drop that came after some data was sent
            if "drop" in self.log and "echo" in self.log[:self.log.index("drop")]:
                raise AssertionError("resumed after a drop")

    try:
        if steps_first:
            with shrink.steps_first(stall=stall) as active:
                assert active
                run_state_machine_as_test(Machine, settings=SETTINGS)
        else:
            run_state_machine_as_test(Machine, settings=SETTINGS)
    except AssertionError as exc:
        assert not isinstance(exc, Flaky)
        program = [n for n in getattr(exc, "__notes__", []) if n.startswith("state.") and "invariants" not in n]
        return counts["runs"], program
    raise AssertionError("the machine's bug was not found")


def test_the_installed_hypothesis_has_what_step_deletion_patches():
    assert shrink.available()


def _names(program: list[str]) -> list[str]:
    return [line.split("(")[0] for line in program]


def test_step_deletion_alone_leaves_only_the_steps_the_failure_needs(monkeypatch):
    """With Hypothesis' own passes switched off, what is left of the failing program is what
    step deletion did: every step but the two the bug needs goes (and without it, none)."""
    from hypothesis.internal.conjecture.shrinker import Shrinker

    monkeypatch.setattr(Shrinker, "greedy_shrink", lambda self: None)
    _, unshrunk = _shrink(steps_first=False)
    _, program = _shrink(steps_first=True)
    assert _names(program) == ["state.boot", "state.echo", "state.drop", "state.resume", "state.teardown"]
    assert len(unshrunk) > len(program), unshrunk


def test_step_deletion_then_hypothesis_gives_the_smallest_program():
    _, plain = _shrink(steps_first=False)
    _, program = _shrink(steps_first=True)
    assert program == plain == ["state.boot(seed=0)", "state.echo(data='', twice=False)", "state.drop()", "state.resume()", "state.teardown()"]


def test_a_stalled_shrink_ends_with_the_shortest_program_so_far():
    """stall=N: N shrink runs in a row without fewer steps end the shrink (Hypothesis' own
    StopShrinking); what it reports then has the steps the failure needs, values unminimised."""
    full_runs, _ = _shrink(steps_first=True)
    runs, program = _shrink(steps_first=True, stall=5)
    assert _names(program) == ["state.boot", "state.echo", "state.drop", "state.resume", "state.teardown"]
    assert runs < full_runs, (runs, full_runs)
