"""pytest collects the state machine itself: the correct reference implementation must pass.

The ``ci`` profile (statemodel/profiles.py) keeps this deterministic and bounded; the
``nightly`` profile runs it long (``pytest --hypothesis-profile=nightly -m slow``).
"""

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from statemodel.machine import MachineOptions, machine_class

StreamMachine = machine_class(MachineOptions())

# Collected by pytest: runs under whichever --hypothesis-profile is active.
TestStreamMachine = StreamMachine.TestCase


@pytest.mark.slow
def test_long_run_on_the_correct_implementation():
    """DESIGN.md §7: zero false failures over a long run (nightly: 20,000 examples)."""
    run_state_machine_as_test(StreamMachine, settings=settings(settings.get_profile("nightly"), database=None))
