"""A recorded state machine that runs clean for its first examples, then has a precondition
that reads something other than the program (the count of machines built, standing in for
timing): Hypothesis' FlakyStrategyDefinition in a later batch of a long run."""

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from statemodel.machine import MachineOptions  # noqa: F401  (load_machine reads it here)
from statemodel.record import Recorder

CLEAN_FOR = 250  # machines built before the precondition starts to flip
BUILT = [0]


class LateFlakyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        BUILT[0] += 1
        self.recorder = Recorder()

    @rule(x=st.integers(0, 3))
    def step(self, x: int) -> None:
        self.recorder.step("step", {"x": repr(x)})

    @precondition(lambda self: BUILT[0] <= CLEAN_FOR or BUILT[0] % 2 == 0)
    @rule(y=st.booleans())
    def sometimes(self, y: bool) -> None:
        self.recorder.step("sometimes", {"y": repr(y)})


def machine_class(options):
    return LateFlakyMachine
