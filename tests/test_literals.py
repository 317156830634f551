"""What a seed generates does not depend on which local modules the process has loaded.

Hypothesis mixes literals from loaded local modules into its draws, within examples and
between them (the next example's prefix); ``statemodel.literals`` empties that pool for whole
runs: the fuzz runner's and a bridge machine's ``TestCase``. Plain Hypothesis keeps it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from hypothesis.internal.conjecture import providers

from statemodel import literals

# A fresh process: the pool only grows within a process, and this test must not leave its
# literal in the pool of the pytest run (that would change other tests' generation).
PROBE = textwrap.dedent("""
    import sys
    from hypothesis import seed, settings, strategies as st
    from hypothesis.internal.conjecture import providers
    from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test
    from statemodel.bridge import TrioStateMachine
    from statemodel.fuzz.runner import Phases, _run

    import magic_literals  # a local module: its literal joins Hypothesis' pool
    magic = sys.argv[1]  # not a literal of this file
    own_pool = providers._get_local_constants
    draws = {"pool": 0, "no pool": 0}  # constant draws with the local pool live / emptied
    original = providers.HypothesisProvider._maybe_draw_constant

    def counted(self, *args, **kwargs):
        draws["pool" if providers._get_local_constants is own_pool else "no pool"] += 1
        return original(self, *args, **kwargs)

    providers.HypothesisProvider._maybe_draw_constant = counted
    SETTINGS = settings(max_examples=100, database=None, stateful_step_count=20, deadline=None)

    def machine(base, seen):
        class Machine(base):
            # only the magic word fits this draw, of all local and global constants
            @rule(x=st.text(alphabet="xyz", min_size=12, max_size=12))
            def draw(self, x):
                seen.append(x)
        return Machine

    def run(way):
        seen = []
        draws.update({"pool": 0, "no pool": 0})
        if way == "plain":
            run_state_machine_as_test(seed(1)(machine(RuleBasedStateMachine, seen)), settings=SETTINGS)
        elif way == "TestCase":
            case = machine(TrioStateMachine, seen).TestCase
            case.settings = SETTINGS
            case("runTest").runTest()
        else:
            _run(machine(TrioStateMachine, seen), 1, SETTINGS, lambda: False, Phases())
        print(way, seen.count(magic), draws["pool"], draws["no pool"])

    for way in ("plain", "TestCase", "runner", "plain"):
        run(way)
""")


def test_runs_draw_nothing_from_the_local_literal_pool(tmp_path):
    magic = "zyxzyxxzyzxy"  # 3**12 words: not drawn by chance
    (tmp_path / "magic_literals.py").write_text(f"MAGIC = {magic!r}\n")
    (tmp_path / "probe.py").write_text(PROBE)
    out = subprocess.run([sys.executable, str(tmp_path / "probe.py"), str(magic)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, check=True)
    rows = [line.split() for line in out.stdout.splitlines()]
    assert [row[0] for row in rows] == ["plain", "TestCase", "runner", "plain"], out.stdout
    for way, hits, with_pool, without_pool in rows:
        hits, with_pool, without_pool = int(hits), int(with_pool), int(without_pool)
        if way == "plain":
            # the pool is live in this process, before and after our runs: the word is drawn
            assert hits > 0 and without_pool == 0, out.stdout
        else:
            # every draw of the run, between examples too, saw the emptied pool
            assert hits == 0 and with_pool == 0 and without_pool > 0, out.stdout


def test_hold_nests_and_the_last_release_restores_hypothesis_pool():
    own = providers._get_local_constants
    with literals.held():
        literals.hold()
        try:
            assert providers._get_local_constants is not own
            assert len(providers._get_local_constants()) == 0
        finally:
            literals.release()
        assert len(providers._get_local_constants()) == 0  # still held once
    assert providers._get_local_constants is own
    literals.release()  # an unmatched release is a no-op, not a crash
    assert providers._get_local_constants is own
