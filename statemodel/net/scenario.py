"""Run a ``faults.Scenario`` against any backend (sim, tcp proxy, netns).

Every backend offers ``apply(fault, link)``, so one runner serves all of them; times
are relative to when the runner starts (virtual under MockClock, real otherwise).
"""

from __future__ import annotations

import trio

from .faults import Scenario


async def run_scenario(net, scenario: Scenario, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Apply each step at its time. A step naming a link that is not live is recorded
    in the trace as ``skipped`` instead of failing the run: schedules are drawn before
    anyone knows which links will exist."""
    start = trio.current_time()
    task_status.started()
    for step in scenario.steps:
        await trio.sleep_until(start + step.at)
        try:
            net.apply(step.fault, step.link)
        except ValueError as exc:
            net.trace.add(trio.current_time(), step.link, "both", "skipped", 0, f"{step.fault!r}: {exc}")
