"""The timeline of a caught mutant shows the wire, in real headless Chromium (issue 13 item 10):
each frame an arrow from sender to receiver with its type, stream, seq/ack and the
resume/welcome contents; a server lane that is not empty; the model's expectation per step;
the violating step and event highlighted.

The run is a failure the fuzzer found for the ``replay_skips_first`` mutant (kept_programs):
the client's first data item is lost with its link, the resume says ``recovered``, and the
server never sends that item again. Set STATEMODEL_ARTIFACTS=DIR to keep the screenshot.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import trio
from cli_helpers import statemodel
from devtools import CHROMIUM, chromium, with_page
from kept_programs import MUTANTS, ONE_BUG

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)"),
]

PROBE = """(() => {
  const lanes = [...document.querySelectorAll('table.msc thead th')].map(th => {
    const r = th.getBoundingClientRect(); return {name: th.textContent, left: r.left, right: r.right};
  });
  const col = name => lanes.find(l => l.name === name);
  const arrows = [...document.querySelectorAll('.arrow')].map(a => {
    const r = a.getBoundingClientRect();
    return {label: a.querySelector('.label').textContent, when: a.querySelector('.when').textContent,
            cls: a.className, left: r.left, right: r.right, height: r.height, width: r.width,
            top: r.top + window.scrollY};
  });
  const serverIndex = lanes.findIndex(l => l.name === 'server');
  const serverCells = [...document.querySelectorAll('table.msc tbody tr.event')].filter(tr => {
    const tds = [...tr.children]; return tds.length === lanes.length && tds[serverIndex].textContent.trim();
  }).length;
  const model = [...document.querySelectorAll('tr.step td.model .stream')].map(d => d.textContent);
  const bad = document.getElementById('violating-event');
  const badStep = document.querySelector('tr.step.violating');
  const br = bad && bad.getBoundingClientRect();
  const sr = badStep && badStep.getBoundingClientRect();
  return {lanes, client: col('client:0'), server: col('server'), arrows, serverCells, model,
          violating: bad && {text: bad.textContent, bg: getComputedStyle(bad).backgroundColor,
                             height: br.height, top: br.top + window.scrollY},
          violatingStep: badStep && {text: badStep.textContent, top: sr.top + window.scrollY},
          violation: document.getElementById('violation').textContent};
})()"""


@pytest.fixture(scope="module")
def caught(tmp_path_factory):
    """`statemodel replay --html` of a failure the fuzzer found: the timeline a user opens."""
    base = tmp_path_factory.mktemp("wire")
    _inv, _where, program = ONE_BUG[0]
    trace = {"machine": "statemodel.machine:machine_class",
             "options": {"target": "reference", "transport": "sim", "mutants": MUTANTS}, "program": program}
    (base / "trace.json").write_text(json.dumps(trace))
    env = {k: v for k, v in os.environ.items() if k != "STATEMODEL_MACHINE"}
    proc = statemodel("replay", str(base / "trace.json"), "--html", str(base / "timeline.html"), cwd=base, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return base / "timeline.html"


def test_the_timeline_shows_frames_server_model_and_the_violation_in_chromium(caught):
    async def look(page):
        seen = await page.evaluate(PROBE)
        # from the lost item to the event that showed it
        top = min(a["top"] for a in seen["arrows"] if "lost" in a["cls"].split()) - 90
        bottom = seen["violating"]["top"] + 60
        shot = await page.screenshot({"x": 0, "y": max(0, top), "width": 1500, "height": bottom - top})
        return seen, shot

    with chromium() as port:
        seen, shot = trio.run(with_page, port, caught.as_uri(), look)

    names = [lane["name"] for lane in seen["lanes"]]
    assert names[1:] == ["client:0", "network", "server", "model expects"], names
    labels = [a["label"] for a in seen["arrows"]]
    # frames with their type, stream and seq, acks, and the resume/welcome contents
    assert "open s=1 q=1 107B" in labels and "open s=2 q=1 67B" in labels
    assert any(re.fullmatch(r"data s=2 q=1 fin k=t", label) for label in labels)
    assert any(re.fullmatch(r"hello resume session=\S+ epoch=\S+ recv=\{0:1\}", label) for label in labels)
    assert any(re.fullmatch(r"welcome outcome=recovered session=\S+ epoch=\S+ recv=\{1:1, 2:1\}", label)
               for label in labels)
    assert any(label.startswith("ping a=") for label in labels)
    # arrows are drawn between the lanes: client -> server and server -> client, full width
    client, server = seen["client"], seen["server"]
    for a in seen["arrows"]:
        assert a["height"] > 0 and a["left"] <= client["right"] and a["right"] >= server["left"], a
    assert any("right" in a["cls"].split() for a in seen["arrows"])
    assert any("left" in a["cls"].split() for a in seen["arrows"])
    # the lost item: drawn as lost, never arrived
    [lost] = [a for a in seen["arrows"] if a["label"] == "data s=2 q=1 fin k=t"]
    assert "lost" in lost["cls"].split() and "never arrived" in lost["when"]
    assert seen["serverCells"] > 0  # server-side events (its close of the dead link)
    assert "stream 0.1: 0/1 open" in seen["model"]  # the model still expects the lost chunk
    bad = seen["violating"]
    assert bad and bad["height"] > 0 and "resumed" in bad["text"] and bad["bg"] != "rgba(0, 0, 0, 0)"
    assert "state.settle()" in seen["violatingStep"]["text"]
    assert "no loss at quiescence" in seen["violation"] and "expected:" in seen["violation"]
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20_000  # a real picture of that part
    keep = os.environ.get("STATEMODEL_ARTIFACTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / "timeline-replay_skips_first.png").write_bytes(shot)
