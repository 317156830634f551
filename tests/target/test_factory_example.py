"""The shipped example factory runs the real StreamMachine (sim, virtual time)."""

from __future__ import annotations

from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from statemodel.machine import MachineOptions, machine_class
from statemodel.target.examples import SMALL_BUFFERS
from statemodel.target.factory import FactoryTarget

SPEC = "statemodel.target.examples:small_buffers"


def test_small_buffers_factory_passes_the_machine() -> None:
    cls = machine_class(MachineOptions(target=SPEC))
    seen = []

    class Watched(cls):
        def teardown(self):
            if self.target is not None:
                seen.append(self.target)
            super().teardown()

    run_state_machine_as_test(Watched, settings=settings(max_examples=15, stateful_step_count=20,
                                                          deadline=None, database=None))
    assert seen and all(isinstance(t, FactoryTarget) for t in seen)
    config = seen[0].server.config  # the server really ran with the factory's limits
    assert {k: getattr(config, k) for k in SMALL_BUFFERS} == SMALL_BUFFERS
