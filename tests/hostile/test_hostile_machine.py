"""HostileMachine under Hypothesis: honest sessions keep every invariant while hostile peers
attack the same server (bounded CI-sized run, virtual time, derandomized); and the machine
does catch a server that accepts forged resume tokens."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from statemodel.hostile.machine import HostileMachine
from statemodel.machine.options import MachineOptions
from statemodel.model import InvariantViolation
from statemodel.profiles import FAST_PHASES

CI = settings(max_examples=25, stateful_step_count=30, deadline=None, derandomize=True, database=None,
              print_blob=True, phases=FAST_PHASES)

TestHostileMachine = HostileMachine.TestCase
TestHostileMachine.settings = CI


class TokenNotChecked(HostileMachine):
    options = MachineOptions(mutants=frozenset({"token_not_checked"}))


def test_machine_catches_a_server_that_accepts_forged_tokens():
    with pytest.raises(InvariantViolation, match="forged|stolen|token"):
        run_state_machine_as_test(TokenNotChecked, settings=settings(CI, max_examples=200, phases=FAST_PHASES[:3]))
