"""Real-time bounds do not count time the host kept the run off the CPU (target/stall.py).

A 400-example tcp run at load 7 failed a correct server three ways, each a settle whose
fixed wall-clock bound ran out while data was still arriving on a starved thread."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from statemodel.machine import MachineOptions, machine_class
from statemodel.net import faults as F
from statemodel.target import stall


def test_a_settle_on_a_starved_host_gets_the_starvation_back(monkeypatch) -> None:
    """The sim (virtual time) with a recovery bound far too short for the reconnect after an
    outage: settle fails it, unless the host reports it kept the run off the CPU meanwhile,
    which then extends the bound (a fake meter: the sim itself never stalls)."""
    verdicts = {}
    for starved in (0.0, 10.0):
        state = machine_class(MachineOptions())()
        try:
            state.boot(seed=5, chunks=[], context=None)
            state.degrade(fault=F.Partition())
            state.advance(seconds=5.0)  # the client noticed and is reconnecting, with backoff
            assert not state.model.sessions[0].status.connected
            monkeypatch.setattr(state.target, "recovery_bound", lambda: 0.01)
            reads = iter([0.0])  # the mark, then `starved` seconds more at every later read
            monkeypatch.setattr(state, "stalled", lambda: next(reads, starved))
            try:
                state.settle()
                verdicts[starved] = "settled"
            except Exception as exc:  # noqa: BLE001 - the verdict under test
                verdicts[starved] = getattr(exc, "invariant", repr(exc))
        finally:
            monkeypatch.undo()
            state.violations.clear()
            state.teardown()
    assert verdicts == {0.0: "recovery within bound", 10.0: "settled"}


def test_the_credit_is_capped_so_a_wait_still_ends() -> None:
    reads = iter([5.0, 5.0, 6.5, 1e6, 4.0])
    deadline = stall.Deadline(100.0, 4.0, lambda: next(reads))
    assert deadline.at() == 104.0
    assert deadline.at() == 105.5
    assert deadline.at() == 104.0 + stall.MAX_CREDIT
    assert deadline.at() == 104.0  # a meter that went backwards credits nothing


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@pytest.mark.skipif(stall.host_stall() == 0.0, reason="no per-thread run delay on this host")
def test_the_kernel_counts_the_wait_for_a_shared_cpu() -> None:
    """Two spinners on one CPU: each waits while the other runs, and the run delay shows it."""
    cpu = min(os.sched_getaffinity(0))
    before_affinity = os.sched_getaffinity(0)
    rival = multiprocessing.get_context("fork").Process(target=_spin, args=(3.0,))
    rival.start()
    try:
        os.sched_setaffinity(rival.pid, {cpu})
        os.sched_setaffinity(0, {cpu})
        before = stall.host_stall()
        _spin(0.3)
        assert stall.host_stall() - before > 0.01
    finally:
        os.sched_setaffinity(0, before_affinity)
        rival.kill()
        rival.join()
