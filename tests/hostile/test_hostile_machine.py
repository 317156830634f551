"""HostileMachine under Hypothesis: honest sessions keep every invariant while hostile peers
attack the same server (bounded CI-sized run, virtual time, derandomized); the machine does
catch a server that accepts forged resume tokens; and hunts aimed at each class of issue 12
(the machine with only the rules that reach it) find nothing on the reference. Each of those
hunts found its class on the unfixed reference on its own (the programs in the docstrings)."""

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


#: class of issue 12 -> the rules that reach it (besides boot; every invariant stays on).
HUNTS = {
    # 1: a `fail` reason with a lone surrogate ended the server process.
    "input_ends_process": ("hostile_command",),
    # 6: deep nesting / "²" keys crashed handlers; #184 tracebacks; WebSocket garbage parked sessions.
    "handler_crash": ("hostile_frame",),
    "websocket_garbage": ("ws_garbage",),
    # 7: a refused resume applied its valid acks.
    "resume_not_atomic": ("hostile_resume",),
    # 2: a peer that left mid-handshake kept its fd until the handshake timeout.
    "prehello": ("prehello_flood",),
    # 4a: unfinished messages on many streams, without a bound.
    "partial_messages": ("partial_flood",),
    # 3: never-reading sessions starved every other session.
    "starvation": ("silent_reader", "advance"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(HUNTS))
def test_hunt_aimed_at_an_issue_12_class_finds_nothing(name):
    machine = HostileMachine.focused(*HUNTS[name])
    run_state_machine_as_test(machine, settings=settings(CI, max_examples=60, stateful_step_count=10))
