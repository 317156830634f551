"""The resume figure and its anchor meet the same conditions (structure on virtual time;
nothing here measures speed).

Since 03c64c2 every cut waits `healthy_after` (0.1 s) first, or the client's backoff slows
it on purpose; the raw connect+close anchor still ran back to back. After an idle pause a
process runs colder, so the figure counted that pause as protocol cost: raw connect+close
itself took 1.4 ms p50 back to back and 2.3-6 ms after a 0.1 s pause on the bench host, and
the "regression" bisected to 37c6f5b..f9952ee was mostly this (at 37c6f5b the bench cut
back to back; at f9952ee after the pause).
"""

from __future__ import annotations

import trio
import trio.testing

from statemodel.bench.loopback import alternate


def test_every_op_runs_after_the_same_idle_pause_and_the_ops_alternate():
    async def main():
        log: list[tuple[str, str, float]] = []

        def op(name: str, cost: float):
            async def run() -> None:
                log.append((name, "start", trio.current_time()))
                await trio.sleep(cost)
                log.append((name, "end", trio.current_time()))
            return run

        samples = await alternate(3, 0.1, {"raw": op("raw", 0.002), "resume": op("resume", 0.005)},
                                  clock=trio.current_time)
        return log, samples

    log, samples = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    starts = [(name, t) for name, kind, t in log if kind == "start"]
    assert [name for name, _ in starts] == ["raw", "resume"] * 3  # side by side, same window
    ends = [0.0] + [t for _, kind, t in log if kind == "end"]
    idle = [round(start - end, 9) for (_, start), end in zip(starts, ends)]
    assert idle == [0.1] * 6  # the anchor waits exactly as long as each cut does
    assert [round(x, 9) for x in samples["raw"]] == [0.002] * 3
    assert [round(x, 9) for x in samples["resume"]] == [0.005] * 3


def test_the_side_by_side_reconnect_figure_times_each_raw_connect_and_each_cut():
    """Over real loopback: every round gives one anchor sample and one recovered resume."""
    from statemodel.bench.loopback import reconnect_side_by_side

    samples = trio.run(reconnect_side_by_side, 3)
    assert len(samples["raw"]) == len(samples["resume"]) == 3
    assert all(x > 0 for x in samples["raw"] + samples["resume"])
