"""Progress display: totals from recorder snapshots; plain lines off a terminal, rich table on one."""

import io

from statemodel.fuzz.progress import Progress

SNAP = {"examples": 3, "steps": 30, "faults": {"Drop": 2}, "slowest_recovery": 0.5}


def test_totals_merge_workers():
    p = Progress(2, stream=io.StringIO(), interval=3600, live=False)
    p.update(0, SNAP)
    p.update(1, dict(SNAP, faults={"Drop": 1, "Clog": 4}, slowest_recovery=1.5))
    t = p.totals()
    assert (t["examples"], t["steps"]) == (6, 60)
    assert t["faults"] == {"Clog": 4, "Drop": 3}
    assert t["slowest_recovery"] == 1.5


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    with Progress(1, stream=out, interval=0, live=False) as p:
        p.update(0, SNAP)
        p.failure("invariant x violated")
    text = out.getvalue()
    assert "examples=3 steps=30" in text and "faults: Drop=2" in text and "slowest recovery=0.500s" in text
    assert "FAILURE: invariant x violated" in text and "[done" in text


def test_rich_table_in_live_mode():
    out = io.StringIO()
    with Progress(1, stream=out, live=True) as p:
        p.update(0, SNAP)
    text = out.getvalue()
    assert "statemodel fuzz" in text and "Drop=2" in text and "0.500 s (virtual)" in text
