"""Step-rate benchmark: the trio bridge against a bare Hypothesis state machine.

DESIGN.md §7 targets a sim-mode step rate of at least half a bare machine's. Both machines
run in the same process, one after the other, with the same settings, so the ratio is
meaningful on any host; absolute numbers are not. Steps are counted by the machines
themselves (one per rule call).

Usage: ``python -m statemodel.bench.steprate [seconds]``.
"""

from __future__ import annotations

import sys
import time

import trio
from hypothesis import Phase, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from statemodel.bridge import TrioStateMachine

__all__ = ["measure"]

_SETTINGS = settings(
    max_examples=20,
    database=None,
    phases=[Phase.generate],
    deadline=None,
    stateful_step_count=50,
)


class BareMachine(RuleBasedStateMachine):
    """Trivial rules: the anchor Hypothesis itself sets."""

    steps = 0

    def __init__(self) -> None:
        super().__init__()
        self.counter = 0

    @rule()
    def increment(self) -> None:
        BareMachine.steps += 1
        self.counter += 1

    @rule()
    def decrement(self) -> None:
        BareMachine.steps += 1
        self.counter -= 1

    @invariant()
    def bounded(self) -> None:
        assert abs(self.counter) <= 10_000


class BridgedMachine(TrioStateMachine):
    """The same rules, each also awaiting once through the trio bridge."""

    steps = 0

    def __init__(self) -> None:
        super().__init__()
        self.counter = 0

    @rule()
    def increment(self) -> None:
        BridgedMachine.steps += 1
        self.counter += 1
        self.run(trio.sleep, 0)

    @rule()
    def decrement(self) -> None:
        BridgedMachine.steps += 1
        self.counter -= 1
        self.run(trio.sleep, 0)

    @invariant()
    def bounded(self) -> None:
        assert abs(self.counter) <= 10_000


def _rate(machine: type, seconds: float) -> tuple[float, int]:
    machine.steps = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        run_state_machine_as_test(machine, settings=_SETTINGS)
        elapsed = time.perf_counter() - start
    return machine.steps / elapsed, machine.steps


def measure(seconds: float = 3.0) -> dict:
    """Run each machine for about ``seconds`` and report steps/s and the bridged/bare ratio."""
    bare_rate, bare_steps = _rate(BareMachine, seconds)
    bridged_rate, bridged_steps = _rate(BridgedMachine, seconds)
    return {
        "bare_steps_per_s": bare_rate,
        "bridged_steps_per_s": bridged_rate,
        "ratio": bridged_rate / bare_rate,
        "bare_steps": bare_steps,
        "bridged_steps": bridged_steps,
        "seconds_each": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    result = measure(float(args[0]) if args else 3.0)
    print(
        f"bare {result['bare_steps_per_s']:.0f} steps/s, bridged {result['bridged_steps_per_s']:.0f} steps/s, "
        f"ratio {result['ratio']:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
