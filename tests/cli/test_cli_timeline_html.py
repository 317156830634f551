"""timeline.html content without a browser: lane order, marks, escaping, self-containment."""

import re

from statemodel.report.timeline import lanes_of, render_html

REC = {
    "initial": {"events": [{"t": 0.0, "lane": "server:0", "kind": "status", "detail": "listening"}]},
    "steps": [
        {"rule": "send", "args": {"msg": "'<b>'"}, "state": {"sent": 1},
         "events": [
             {"t": 0.05, "lane": "client:10", "kind": "frame", "detail": "data seq=1"},
             {"t": 0.05, "lane": "client:2", "kind": "frame", "detail": "data seq=1"},
             {"t": 0.06, "lane": "net", "kind": "data", "detail": "link 1 s2c 20B"},
             {"t": 0.07, "lane": "net", "kind": "fault", "detail": "Abort(direction='c2s')"},
             {"t": 0.08, "lane": "client:2", "kind": "status", "detail": "disconnected(abort)"},
         ]},
    ],
    "violation": {"invariant": "prefix", "expected": [1], "actual": [1, 1], "step": 1},
}


def test_lanes_clients_then_network_then_servers():
    assert lanes_of(REC) == ["client:2", "client:10", "net", "server:0"]


def test_marks_escaping_and_violation():
    page = render_html({"recording": REC, "machine": "m:f", "options": {}, "program": "state = M()"})
    assert re.search(r'class="ev fault"[^>]*>fault: Abort', page)
    assert 'class="ev drop"' in page  # the disconnect is highlighted as a drop
    assert "← data: link 1 s2c 20B" in page
    assert "&#x27;&lt;b&gt;&#x27;" in page and "'<b>'" not in page
    assert "Invariant violated: prefix" in page and "actual:   [1, 1]" in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from the network


def test_passing_run_says_so():
    page = render_html({"recording": dict(REC, violation=None)})
    assert "no failure" in page
