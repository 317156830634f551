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


class LateHarnessErrorMachine(RuleBasedStateMachine):
    """Records its steps (the shrinker's runs are counted from recordings), and makes Hypothesis
    raise once the drawn numbers add up to 10: a failure Hypothesis would shrink for a while."""

    def __init__(self) -> None:
        super().__init__()
        from statemodel.record import Recorder

        self.recorder = Recorder()
        self.total = 0

    @rule(x=st.integers(0, 3), data=st.data())
    def step(self, x: int, data) -> None:
        self.recorder.step("step", {"x": repr(x)})
        self.total += x
        if self.total >= 10:
            data.draw(st.integers(min_value=5, max_value=1))  # Hypothesis raises: min > max


def machine_class_late(options):
    return LateHarnessErrorMachine


def machine_class_once(options):
    """Hypothesis raises in the 3rd example the class runs, and never again: one batch's
    tester error in a run whose other batches are clean (a fresh class per worker, so each
    run counts from 0)."""

    class OnceHarnessErrorMachine(RuleBasedStateMachine):
        built = 0

        def __init__(self) -> None:
            super().__init__()
            from statemodel.record import Recorder

            type(self).built += 1
            self.recorder = Recorder()

        @rule(x=st.integers(0, 3), data=st.data())
        def step(self, x: int, data) -> None:
            self.recorder.step("step", {"x": repr(x)})
            if type(self).built == 3:
                data.draw(st.integers(min_value=5, max_value=1))  # Hypothesis raises: min > max

    return OnceHarnessErrorMachine
