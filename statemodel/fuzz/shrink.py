"""Step deletion before Hypothesis' own shrink passes.

A failing program found by generation is 5-20 steps, each 3-20 choices (the rule, its
bundle picks, chunk specs, fault parameters). Hypothesis' shrinker works on that choice
sequence: its passes try one change per choice or span, and nearly every change to a rule
choice shifts what the rest of the program draws ("misaligned"), so most of its 200-800 test
runs in a hunt are spent minimising choices of steps that the smallest program does not
have at all. Deleting whole steps first is what a person would do, and each deletion keeps
the remaining steps' choices aligned.

``steps_first()`` runs that deletion (``delete_steps``: from the end backwards) at the start
of every shrink of a stateful test, through the shrinker's own ``consider_new_nodes``: every
smaller failing program it finds is an ordinary Hypothesis shrink target (saved to the
example database, printed with its ``@reproduce_failure`` blob, replayed by ``statemodel
replay``), and Hypothesis' passes then carry on from it as before. With ``stall`` (hunts) a
shrink also ends once it stops making the program shorter.

It patches two methods of Hypothesis' internal ``Shrinker``; on a Hypothesis without it the
patch is skipped (shrinking is then Hypothesis' alone) and ``available()`` says so.
"""

from __future__ import annotations

import contextlib

try:  # internal API: checked, never assumed
    from hypothesis.internal.conjecture.shrinker import Shrinker, StopShrinking
    from hypothesis.stateful import STATE_MACHINE_RUN_LABEL
except ImportError:  # pragma: no cover - a Hypothesis that reorganised its internals
    Shrinker = StopShrinking = None
    STATE_MACHINE_RUN_LABEL = None

_HOOK = "initial_coarse_reduction"


def available() -> bool:
    return Shrinker is not None and all(callable(getattr(Shrinker, name, None))
                                        for name in (_HOOK, "consider_new_nodes", "check_calls"))


def step_spans(target) -> list[tuple[int, int]]:
    """(start, end) node ranges of the program's steps that may be deleted: every state
    machine step but the first (``boot``, the initialize rule: always run first) and the
    last span (the step that failed, or only the "stop" choice if teardown failed)."""
    spans = [(s.start, s.end) for s in target.spans if s.label == STATE_MACHINE_RUN_LABEL]
    return spans[1:-1]


def without_steps(nodes, spans, first: int, last: int):
    """The choice sequence ``nodes`` without steps ``first``..``last`` (indices into
    ``spans``, from ``step_spans``).

    The first rule step also draws the example's swarm setting (which rules are switched
    off: one integer, 0..254, Hypothesis' ``FeatureFlags``, right after the step's "go on"
    choice). Deleting it would make the next step read that integer as its own "go on"
    choice, and everything after would be misaligned. So that step's first two choices stay
    and the next step's "go on" choice goes instead."""
    lo, hi = spans[first][0], spans[last][1]
    if first == 0 and hi < len(nodes) and lo + 1 < hi and _swarm(nodes[lo + 1]) and nodes[hi].type == "boolean":
        lo, hi = lo + 2, hi + 1
    return nodes[:lo] + nodes[hi:]


def _swarm(node) -> bool:
    return node.type == "integer" and node.constraints.get("min_value") == 0 \
        and node.constraints.get("max_value") == 254


def delete_steps(shrinker) -> None:
    """Delete steps from the end of the program backwards, keeping each deletion after which
    the program still fails: first every step but the last at once (often all a mutant
    needs is ``boot`` and one rule), then one step at a time, and after each success as many
    of the steps before it as can go too (doubling, then halving: a few runs for a long
    irrelevant stretch). One test run per attempt."""
    spans = step_spans(shrinker.shrink_target)
    if len(spans) >= 2:
        shrinker.consider_new_nodes(without_steps(shrinker.nodes, spans, 0, len(spans) - 2))
    i = len(step_spans(shrinker.shrink_target)) - 1
    while i >= 0:
        spans = step_spans(shrinker.shrink_target)
        if i >= len(spans):
            i = len(spans) - 1
            continue
        nodes = shrinker.nodes  # a snapshot: every attempt below deletes from it

        def without(k: int, i=i, spans=spans, nodes=nodes) -> bool:
            """Delete the k steps ending with step i (of the snapshot)."""
            if k > i + 1:
                return False
            return shrinker.consider_new_nodes(without_steps(nodes, spans, i - k + 1, i))

        if not without(1):
            i -= 1
            continue
        # Steps i-k+1..i can go: find a large k (k=1 works; try 2, 4, 8... then bisect).
        lo, hi = 1, 2
        while without(hi):
            lo, hi = hi, hi * 2
        while lo + 1 < hi:
            mid = (lo + hi) // 2
            if without(mid):
                lo = mid
            else:
                hi = mid
        i -= lo


def program_steps(target) -> int:
    """Steps of a shrink target's program: its state machine steps, less the trailing span
    holding only the "stop" choice (a program that failed in teardown ends with one)."""
    return sum(1 for s in target.spans if s.label == STATE_MACHINE_RUN_LABEL and s.end - s.start >= 2)


@contextlib.contextmanager
def steps_first(stall: int | None = None, stall_steps: int = 10):
    """Within this block, every Hypothesis shrink of a stateful test deletes steps first.

    ``stall``: also end a shrink once that many shrink runs in a row found no program with
    fewer steps, provided it is at most ``stall_steps`` steps by then. After step deletion
    Hypothesis' passes spend hundreds of runs minimising the choices of a program they
    rarely make shorter; a stalled shrink ends as Hypothesis' own stall limit ends one, and
    its smallest program is reported (and saved, and replayed) as usual."""
    if not available():
        yield False
        return
    original = getattr(Shrinker, _HOOK)
    original_check = Shrinker.check_calls

    def initial_coarse_reduction(self):
        delete_steps(self)
        return original(self)

    def check_calls(self):
        original_check(self)
        if stall is None:
            return
        steps = program_steps(self.shrink_target)
        if not steps:  # not a state machine's program
            return
        best = self.__dict__.get("_statemodel_best")
        if best is None or steps < best[0]:
            self.__dict__["_statemodel_best"] = (steps, self.calls)
        elif steps <= stall_steps and self.calls - best[1] >= stall:
            raise StopShrinking

    setattr(Shrinker, _HOOK, initial_coarse_reduction)
    Shrinker.check_calls = check_calls
    try:
        yield True
    finally:
        setattr(Shrinker, _HOOK, original)
        Shrinker.check_calls = original_check
