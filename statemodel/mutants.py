"""Prove the tester works: run the state machine against each mutant of the reference server.

A mutant is a realistic bug switched on in the reference implementation
(``statemodel/stream/mutants.py`` lists them with the real-world bug class each models).
``hunt`` runs the ordinary fuzz worker against one mutant until it fails or the budget runs
out; the shrunk program it reports is the same runnable program ``statemodel fuzz`` writes.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from statemodel.fuzz.causes import program_steps
from statemodel.fuzz.config import FuzzConfig
from statemodel.fuzz.runner import run_worker, shrinking_without_wall_clock
from statemodel.stream.mutants import MUTANTS

# A hunt stops shrinking once this many shrink runs in a row found no shorter failing
# program (statemodel.fuzz.config.FuzzConfig.shrink_stall). Shrinking starts by deleting
# whole steps (statemodel.fuzz.shrink), which is where the steps go; after that Hypothesis
# spends hundreds of runs minimising choices (a chunk's seed, a rule's swarm flags) of a
# program no shorter for it. 20, not 40: over the 24 hunts side by side (session 8) it halved
# the shrink runs (median 43 -> 23) for the same programs but two one step longer (<= 9).
SHRINK_STALL = 20


@dataclass
class HuntResult:
    name: str
    bug_class: str
    caught: bool
    seconds: float
    examples: int
    shrunk_steps: int | None
    invariant: str | None
    program: str | None
    shrink_runs: int = 0  # test runs of the shrinker (after the first failure, before the final replay)

    def to_json(self) -> dict:
        return asdict(self)


def hunt(name: str, budget_seconds: float | None = 30.0, seed: int = 0, profile: str = "hunt",
         max_examples: int | None = None, shrink_stall: int | None = SHRINK_STALL) -> HuntResult:
    """Fuzz the reference implementation with mutant ``name`` until caught or out of budget.

    ``max_examples`` (with ``budget_seconds=None``) makes the hunt deterministic: the same
    seed explores the same examples on any machine, however fast, which is what tests use.
    ``shrink_stall``: stop shrinking after that many shrink runs without a shorter program
    (None: shrink until Hypothesis is done or the budget is spent).
    """
    if name not in MUTANTS:
        raise ValueError(f"unknown mutant {name!r}; known: {', '.join(sorted(MUTANTS))}")
    started = time.monotonic()
    # Shrinking is bounded by the hunt's own budget (a stop mid-shrink keeps the smallest
    # program so far), or by nothing that depends on wall time when the hunt is deterministic.
    if max_examples is not None:
        config = FuzzConfig(mutants=(name,), seed=seed, profile=profile, examples=max_examples,
                            shrink_budget=None, shrink_stall=shrink_stall)
    else:
        config = FuzzConfig(mutants=(name,), seed=seed, profile=profile, duration=budget_seconds,
                            batch_examples=100_000, shrink_budget=None, shrink_stall=shrink_stall)
    over_budget = (lambda: False) if budget_seconds is None else (
        lambda: time.monotonic() - started > budget_seconds)
    if max_examples is not None:  # deterministic: nothing, not even how far it shrinks, depends on load
        with shrinking_without_wall_clock():
            result = run_worker(config, should_stop=over_budget)
    else:
        result = run_worker(config, should_stop=over_budget)
    failure = result.failures[0] if result.failures else None
    return HuntResult(
        name=name,
        bug_class=MUTANTS[name][0],
        caught=failure is not None,
        seconds=round(time.monotonic() - started, 2),
        examples=result.examples,
        shrink_runs=result.shrink_runs,
        shrunk_steps=program_steps(failure.program) if failure else None,
        invariant=failure.invariant["invariant"] if failure and failure.invariant else None,
        program=failure.program if failure else None,
    )


def hunt_all(names=None, budget_seconds: float = 30.0, seed: int = 0, on_result=None) -> list[HuntResult]:
    results = []
    for name in names or sorted(MUTANTS):
        r = hunt(name, budget_seconds, seed)
        results.append(r)
        if on_result is not None:
            on_result(r)
    return results
