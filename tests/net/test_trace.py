"""Trace digests: independent of how concurrent directions interleave, sensitive to
everything else; cheap to switch off; renderable."""

from __future__ import annotations

import json

from statemodel.net.trace import Trace


def make(events):
    t = Trace()
    for e in events:
        t.add(*e)
    return t


A = (0.5, 0, "c2s", "send", 10, "")
B = (0.5, 0, "s2c", "send", 20, "")
C = (0.5, 0, "c2s", "deliver", 10, "")


def test_digest_ignores_interleaving_across_directions_but_not_within_one():
    assert make([A, B, C]).digest() == make([B, A, C]).digest()
    assert make([A, C, B]).digest() != make([C, A, B]).digest()


def test_digest_sees_times_sizes_kinds_and_details():
    base = make([A, B]).digest()
    for changed in [(0.6, 0, "c2s", "send", 10, ""), (0.5, 0, "c2s", "send", 11, ""),
                    (0.5, 1, "c2s", "send", 10, ""), (0.5, 0, "c2s", "send", 10, "op=8")]:
        assert make([changed, B]).digest() != base


def test_json_render_and_limit():
    t = Trace(limit=2)
    for e in (A, B, C):
        t.add(*e)
    out = json.loads(json.dumps(t.to_json()))
    assert out["dropped_events"] == 1 and len(out["events"]) == 2 and out["digest"] == t.digest()
    text = t.render()
    assert "c2s  send 10B" in text and "s2c  send 20B" in text
    assert [e.kind for e in t.of_kind("send")] == ["send", "send"]
