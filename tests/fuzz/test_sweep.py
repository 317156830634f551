"""A fuzz worker frees each finished example before the next starts (statemodel.fuzz.memory.Sweeper).

Consecutive examples with multi-MiB messages stacked up in a worker (40 MiB each, peak 371
MiB at a 188 MiB plateau in a 20,000-example run): a finished machine is cyclic garbage, and
CPython's full collection rarely runs while Hypothesis holds a run's results.
"""

from __future__ import annotations

import gc

import cyclic_machine

from statemodel.fuzz.config import FuzzConfig
from statemodel.fuzz.runner import run_worker


def test_no_earlier_examples_payload_is_alive_when_an_example_starts() -> None:
    cyclic_machine.PAYLOADS.clear()
    cyclic_machine.ALIVE_AT_START.clear()
    enabled = gc.isenabled()
    gc.disable()  # the sweep must not rely on an automatic collection happening to run
    try:
        result = run_worker(FuzzConfig(machine="cyclic_machine:machine_class", seed=3, examples=20, profile="dev"))
    finally:
        if enabled:
            gc.enable()
    assert result.failures == [] and result.error is None
    assert len(cyclic_machine.ALIVE_AT_START) >= 20
    assert set(cyclic_machine.ALIVE_AT_START) == {0}, cyclic_machine.ALIVE_AT_START
    assert gc.get_freeze_count() == 0  # what a run froze is collectable again after it
