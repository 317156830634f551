"""A state machine whose rule makes Hypothesis itself raise inside an example (a strategy it
rejects when drawn: ``InvalidArgument`` from Hypothesis' own code), or, with
``machine_class_crash``, whose own code crashes: the tester's errors, never the target's."""

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from statemodel.machine import MachineOptions  # noqa: F401  (load_machine reads it here)


class HarnessErrorMachine(RuleBasedStateMachine):
    @rule(data=st.data())
    def draw(self, data) -> None:
        data.draw(st.integers(min_value=5, max_value=1))  # Hypothesis raises: min > max


def machine_class(options):
    return HarnessErrorMachine
