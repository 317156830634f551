"""Is the sim a pure function of Hypothesis' choices, whatever the process did before?

Hypothesis re-runs choice sequences it has run before (to shrink, to explore around them) and
raises ``FlakyStrategyDefinition`` when a re-run draws differently. A re-run late in a long
process differs from the first run in what the process did meanwhile, so this runs one fixed
batch (``run_worker`` with a seed and an example count, or a deterministic mutant hunt, with
its shrinking) once per *perturbation* of exactly that history, in one process, and compares
every trio run's scheduling trace: the task stepped and the virtual time, step by step.

Perturbations (combine with ``+``):

- ``none``: as is (the reference; a second ``none`` checks the harness itself).
- ``gc``: ``gc.set_threshold(1, 1, 1)``: a cyclic collection at nearly every allocation, so
  finalizers and weakref callbacks run at other moments (inside the run, between steps).
- ``heap``: junk of random sizes allocated and freed between examples: every object after
  it lives at another address (id-hashed sets and dicts iterate in another order).
- ``ids``: ``id()`` as trio's run loop sees it is negated, so every tie trio breaks by
  address (deadlines due at the same instant, idle waiters with the same cushion) falls the
  other way.

``python -m statemodel.bench.purity --examples 60 --perturb none,gc,heap,ids`` (or
``--mutant NAME``) prints one line per perturbation: SAME, or the first run that differed.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import trio
import trio._core._run as _trio_run

from statemodel import bridge
from statemodel.fuzz import memory

PERTURBATIONS = ("none", "gc", "heap", "ids")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")


class StepTrace(trio.abc.Instrument):
    """Hash of the run's task steps: the task's name (addresses blanked) and the virtual time."""

    def __init__(self) -> None:
        self.steps = 0
        self._hash = hashlib.sha256()

    def before_task_step(self, task) -> None:
        self.steps += 1
        self._hash.update(f"{_ADDRESS.sub('@', task.name)}|{trio.current_time()!r}\n".encode())

    def digest(self) -> str:
        return self._hash.hexdigest()[:16]


@dataclass
class Outcome:
    perturbation: str
    result: tuple
    runs: list[tuple[int, str]] = field(default_factory=list)  # (task steps, trace) per trio run

    def first_difference(self, reference: "Outcome") -> int | None:
        """Index of the first run whose trace differs from ``reference`` (None: all equal)."""
        for i, (mine, theirs) in enumerate(zip(self.runs, reference.runs)):
            if mine != theirs:
                return i
        return None if len(self.runs) == len(reference.runs) else min(len(self.runs), len(reference.runs))


@contextlib.contextmanager
def perturbed(perturbation: str, seed: int = 0) -> Iterator[None]:
    """Apply ``perturbation`` (names from PERTURBATIONS joined by ``+``) for the block."""
    names = set(perturbation.split("+"))
    unknown = names - set(PERTURBATIONS)
    if unknown:
        raise ValueError(f"unknown perturbation {sorted(unknown)}; known: {', '.join(PERTURBATIONS)}")
    with contextlib.ExitStack() as stack:
        if "gc" in names:
            saved = gc.get_threshold()
            gc.set_threshold(1, 1, 1)
            stack.callback(gc.set_threshold, *saved)
        if "heap" in names:
            rng, junk = random.Random(seed), []
            sweep = memory.Sweeper.sweep

            def sweep_and_shift(self) -> None:
                sweep(self)
                junk.extend(bytearray(rng.randrange(1, 512)) for _ in range(rng.randrange(1, 4000)))
                if rng.random() < 0.3:
                    del junk[: rng.randrange(len(junk) + 1)]

            memory.Sweeper.sweep = sweep_and_shift
            stack.callback(setattr, memory.Sweeper, "sweep", sweep)
        if "ids" in names:
            had = "id" in vars(_trio_run)
            _trio_run.id = lambda obj: -id(obj)  # the module global shadows the builtin
            stack.callback((lambda: setattr(_trio_run, "id", id)) if had else (lambda: delattr(_trio_run, "id")))
        yield


def run_batch(seed: int, examples: int, mutant: str | None = None) -> tuple:
    """The fixed batch: a deterministic mutant hunt (generation and shrinking) or a fuzz run."""
    if mutant is not None:
        from statemodel.mutants import hunt

        h = hunt(mutant, None, seed, max_examples=examples, shrink_stall=20)
        return (h.caught, h.examples, h.shrunk_steps, h.shrink_runs)
    from statemodel.fuzz.config import FuzzConfig
    from statemodel.fuzz.runner import run_worker

    r = run_worker(FuzzConfig(seed=seed, examples=examples, shrink_budget=None))
    return (r.examples, len(r.failures), r.trace_digest[:16])


def compare(seed: int, examples: int, perturbations=PERTURBATIONS, mutant: str | None = None) -> list[Outcome]:
    """Run the batch once per perturbation (in order, in this process); the first is the
    reference the others are compared with (``Outcome.first_difference``)."""
    outcomes = []
    for perturbation in perturbations:
        traces: list[StepTrace] = []

        def factory() -> StepTrace:
            traces.append(StepTrace())
            return traces[-1]

        with bridge.instrumented(factory), perturbed(perturbation, seed):
            result = run_batch(seed, examples, mutant)
        outcomes.append(Outcome(perturbation, result, [(t.steps, t.digest()) for t in traces]))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m statemodel.bench.purity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--examples", type=int, default=30)
    parser.add_argument("--mutant", default=None, help="a deterministic hunt of this mutant (with its shrinking)")
    parser.add_argument("--perturb", default=",".join(("none",) + PERTURBATIONS[1:]),
                        help="comma-separated perturbations, the first is the reference (default: %(default)s)")
    args = parser.parse_args(argv)
    outcomes = compare(args.seed, args.examples, args.perturb.split(","), args.mutant)
    reference, differed = outcomes[0], False
    for o in outcomes:
        steps = sum(s for s, _ in o.runs)
        line = f"{o.perturbation:<14} {o.result} trio runs={len(o.runs)} task steps={steps}"
        if o is not reference:
            i = o.first_difference(reference)
            differed |= i is not None
            line += "  SAME" if i is None else f"  DIFFERS from run {i}"
        print(line, flush=True)
    return 1 if differed else 0


if __name__ == "__main__":
    raise SystemExit(main())
