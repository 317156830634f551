"""A state machine whose precondition reads something other than the program (a counter of
examples run, standing in for the network's timing over real sockets)."""

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from statemodel.machine import MachineOptions  # noqa: F401  (load_machine reads it here)

RUNS = [0]


class TimingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        RUNS[0] += 1

    @rule(x=st.integers(0, 3))
    def step(self, x: int) -> None:
        pass

    @precondition(lambda self: RUNS[0] % 2 == 0)
    @rule(y=st.booleans())
    def sometimes(self, y: bool) -> None:
        pass


def machine_class(options):
    return TimingMachine
