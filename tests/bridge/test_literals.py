"""A machine's generation does not depend on which local modules the process has loaded.

Hypothesis mixes literals from loaded local modules into its draws; ``statemodel.literals``
empties that pool while a bridge machine lives, and restores it afterwards.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from hypothesis.internal.conjecture import providers

from statemodel import literals

# Run in a fresh process: the pool only grows within a process, and this test must not leave
# its literal in the pool of the pytest run (that would change other tests' generation).
PROBE = textwrap.dedent("""
    import sys
    from hypothesis import seed, settings, strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test
    from statemodel.bridge import TrioStateMachine

    import magic_literals  # a local module: its literal joins Hypothesis' pool
    magic = int(sys.argv[1])  # not a literal of this file

    def hits(base):
        seen = []
        class Machine(base):
            @rule(x=st.integers(0, 2**20))
            def draw(self, x):
                seen.append(x)
        run_state_machine_as_test(seed(1)(Machine), settings=settings(
            max_examples=100, database=None, stateful_step_count=20, deadline=None))
        return seen.count(magic)

    print(hits(RuleBasedStateMachine), hits(TrioStateMachine), hits(RuleBasedStateMachine))
""")


def test_bridge_machines_draw_no_local_module_literals(tmp_path):
    magic = 731_337
    (tmp_path / "magic_literals.py").write_text(f"MAGIC = {magic}\n")
    (tmp_path / "probe.py").write_text(PROBE)
    out = subprocess.run([sys.executable, str(tmp_path / "probe.py"), str(magic)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, check=True)
    before, bridged, after = map(int, out.stdout.split())
    # Plain Hypothesis machines draw the loaded module's literal (so the pool is live in this
    # process) both before and after a bridge machine ran; the bridge machine never does.
    assert before > 0 and after > 0, out.stdout
    assert bridged == 0, out.stdout


def test_hold_nests_and_the_last_release_restores_hypothesis_pool():
    own = providers._get_local_constants
    literals.hold()
    literals.hold()
    try:
        assert providers._get_local_constants is not own
        assert len(providers._get_local_constants()) == 0
        literals.release()
        assert len(providers._get_local_constants()) == 0  # still held once
    finally:
        literals.release()
    assert providers._get_local_constants is own
    literals.release()  # an unmatched release is a no-op, not a crash
    assert providers._get_local_constants is own
