"""The fuzz runner's memoised pareto sort keys (statemodel.pareto) change no example.

Hypothesis keeps a pareto front whenever a run has a database and the test calls
``target()``; the memo only skips recomputing keys, so a seeded run must draw exactly the
same examples with it as without it.
"""

from __future__ import annotations

from hypothesis import Phase, settings, strategies as st, target
from hypothesis import seed as hypothesis_seed
from hypothesis.database import InMemoryExampleDatabase
from hypothesis.internal.conjecture import pareto
from hypothesis.internal.conjecture.shrinker import sort_key
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from statemodel.pareto import cached_sort_keys, memoised


class _Probe(RuleBasedStateMachine):
    """A tiny targeting machine; every rule call is logged in SEEN."""

    SEEN: list = []

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.longest = 0

    @rule(x=st.integers(-1000, 1000))
    def add(self, x):
        _Probe.SEEN.append(("add", x))
        self.total += x

    @rule(s=st.text(max_size=5))
    def text(self, s):
        _Probe.SEEN.append(("text", s))
        self.longest = max(self.longest, len(s))

    def teardown(self):
        # Hypothesis takes one observation per label and example (StreamMachine: at teardown).
        target(float(self.total % 97), label="mod")
        target(float(self.longest - abs(self.total) % 7), label="shape")


def _drawn(memo: bool) -> tuple[list, int]:
    """Every step a seeded, targeting stateful run with a database takes (and the memo's size)."""
    _Probe.SEEN = []
    config = settings(max_examples=80, stateful_step_count=10, database=InMemoryExampleDatabase(),
                      deadline=None, phases=(Phase.generate, Phase.target))
    factory = hypothesis_seed(11)(lambda: _Probe())
    if not memo:
        run_state_machine_as_test(factory, settings=config)
        return _Probe.SEEN, 0
    with cached_sort_keys():
        run_state_machine_as_test(factory, settings=config)
        return _Probe.SEEN, len(pareto.sort_key.cache)


def test_a_targeting_run_draws_the_same_examples_with_the_memo() -> None:
    plain, _ = _drawn(memo=False)
    memo, cached = _drawn(memo=True)
    assert cached > 0  # the front really went through the memo
    assert memo == plain
    assert pareto.sort_key is sort_key  # restored after the run


def test_the_memo_returns_the_wrapped_key_and_never_a_stale_one() -> None:
    calls = []

    def key(nodes):
        calls.append(nodes)
        return (len(nodes), tuple(nodes))

    f = memoised(key, size=2)
    a, b, c = (1, 2), (3,), (4, 5, 6)
    assert f(a) == (2, (1, 2)) and f(a) == (2, (1, 2)) and len(calls) == 1
    # An entry under c's id whose object is not c (what a recycled id looks like) is not used.
    f.cache[id(c)] = ((9,), "stale")
    assert f(c) == (3, (4, 5, 6))
    f(b)
    f(a)
    assert len(f.cache) == 2  # bounded: the oldest entry went
