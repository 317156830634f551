"""A machine whose *target* fails at a step that changes from run to run (a failure that
depends on timing, as over real sockets): ``PLAN`` lists, run after run, the step at which
the next example that reaches it fails; an empty plan never fails."""

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from statemodel.machine import MachineOptions  # noqa: F401  (load_machine reads it here)
from statemodel.model import InvariantViolation
from statemodel.record import Recorder

PLAN: list[int] = []


class TimingFailure(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.steps = 0
        self.recorder = Recorder()  # as StreamMachine's: the runner reads where a failure was seen

    @rule(x=st.integers(0, 10))
    def step(self, x: int) -> None:
        self.steps += 1
        self.recorder.step("step", {"x": repr(x)})
        if PLAN and self.steps == PLAN[0]:
            PLAN.pop(0)
            raise InvariantViolation("delivery is in order", "stream 0", "chunk 1", "chunk 2")


def machine_class(options):
    return TimingFailure
