"""statemodel.bench.purity: the sim is a pure function of the choices, whatever a long process
did before a re-run (when the GC runs, where objects live, how trio's id() ties fall)."""

from __future__ import annotations

import trio

from statemodel import timers
from statemodel.bench import purity
from statemodel.bridge import VirtualClock


def test_a_fuzz_batch_schedules_the_same_under_gc_heap_and_address_perturbations():
    """Every trio run of the batch steps the same tasks at the same virtual times with
    collections at nearly every allocation, the heap shifted between examples and trio's
    address tie-breaks reversed: a long process's history cannot change a re-run."""
    reference, perturbed = purity.compare(777, 2, ("none", "gc+heap+ids"))
    assert reference.runs and sum(steps for steps, _ in reference.runs) > 100
    assert perturbed.result == reference.result
    assert perturbed.first_difference(reference) is None, (reference.runs, perturbed.runs)


def _traced(alarm_at: float, perturbation: str) -> tuple[int, str]:
    """A wait on an alarm inside a scope due at 1.0, traced; trio's scheduler seeded."""

    async def scenario():
        with trio.CancelScope(deadline=1.0):
            await timers.sleep_on(timers.Alarm(alarm_at))
            await trio.lowlevel.checkpoint()

    trace = purity.StepTrace()
    trio._core._run._r.seed(0)
    with purity.perturbed(perturbation):
        trio.run(scenario, clock=VirtualClock(), instruments=[trace])
    return trace.steps, trace.digest()


def test_reversed_address_ties_do_not_change_a_run_with_a_deadline_tie():
    """The ``ids`` perturbation reaches trio's deadline tie-break. With trio's own heap
    (``timers.fifo_ties`` reverted) which of the wait and its scope expires first follows the
    two objects' addresses, which differ from run to run, and ``ids`` flips it: among these
    twelve runs some wake the wait first (two steps more) and the traces differ (all twelve
    agree with probability about 2**-11). With the set-order heap every run is the same."""
    traces = {_traced(1.0, perturbation) for perturbation in ("none", "ids") * 6}
    assert len(traces) == 1, traces
    # and the trace sees that branch: an alarm due just before the scope is a different run
    assert _traced(0.999, "none") not in traces
