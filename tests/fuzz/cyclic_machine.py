"""A state machine that leaves what a finished StreamMachine leaves: its world in reference
cycles (here a payload that refers to itself and to the machine), referred to by Hypothesis'
record of the example. It notes, as each example starts, how many earlier payloads are alive."""

import weakref

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from statemodel.machine import MachineOptions  # noqa: F401  (load_machine reads it here)

PAYLOADS: list[weakref.ref] = []
ALIVE_AT_START: list[int] = []


class Payload:
    def __init__(self, owner: object) -> None:
        self.data = bytes(1 << 20)
        self.owner = owner  # machine -> payload -> machine
        self.me = self  # and a cycle without the machine (a task and its nursery, say)


class CyclicMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        ALIVE_AT_START.append(sum(ref() is not None for ref in PAYLOADS))
        self.payload = Payload(self)
        PAYLOADS.append(weakref.ref(self.payload))

    @rule(x=st.integers(0, 3))
    def step(self, x: int) -> None:
        pass


def machine_class(options):
    return CyclicMachine
