"""timeline.html: a self-contained message-sequence chart of one recorded run.

Columns are lanes (each client session, the network, other peers, the server) and, last, the
model: what it expects after each step. Rows are steps and, inside each, the events in time
order. Each protocol frame is an arrow from its sender's lane to its receiver's, labelled with
its type, stream, seq/ack (and the resume/welcome contents), when it arrived or that it was
lost. Faults and drops are marked, and the violating step and event are highlighted; the
violated invariant (expected vs actual) opens the page. Inline CSS and JS only, so it opens
from a CI artefact with no network.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

DROP_WORDS = ("drop", "disconnect", "close", "abort", "reset", "rst", "fin", "partition", "truncate")
# What the machine records when it sees something the model judges, in the order most telling.
OBSERVATIONS = ("chunk", "outcome", "status")

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:16px;color:#222;background:#fff}
h1{font-size:20px;margin:0 0 4px} .meta{color:#555;margin-bottom:12px}
table.msc{border-collapse:collapse;width:100%;table-layout:fixed}
.msc th{position:sticky;top:0;background:#263238;color:#fff;padding:6px;font-weight:600;z-index:1}
.msc th.model{background:#4a148c}
.msc td{padding:2px 6px;vertical-align:top;border-left:2px solid #cfd8dc;word-wrap:break-word}
.msc td.t{border-left:none;color:#777;font-family:monospace;width:70px}
.msc td.model{background:#f3e5f5;border-left:2px solid #7b1fa2;font-size:12px}
.msc tr.step td{background:#eceff1;border-top:2px solid #90a4ae;font-family:monospace;font-weight:600}
.msc tr.step td.model{background:#e1bee7;font-weight:400;color:#311b92}
.msc tr.step.violating td{background:#ffcdd2;border-top:3px solid #c62828}
.ev{display:inline-block;border-radius:4px;padding:1px 6px;font-family:monospace;font-size:12px;background:#e3f2fd}
.ev.frame{background:#e8f5e9}.ev.status{background:#fff8e1}
.ev.fault{background:#ffcdd2;border:1px solid #c62828;font-weight:700}
.ev.drop{background:#ffe0b2;border:1px solid #ef6c00}
.ev.recovery{background:#d1c4e9}
.ev.violating,.arrow.violating .label{outline:3px solid #c62828;background:#ff8a80;font-weight:700}
td.wire{padding:0 4px;border-left:2px solid #cfd8dc}
.arrow{position:relative;margin:3px 0 2px;border-bottom:2px solid #2e7d32;min-height:16px}
.arrow.s2c{border-bottom-color:#1565c0}
.arrow.lost{border-bottom-style:dashed;border-bottom-color:#c62828}
.arrow:after{content:"";position:absolute;bottom:-6px;border:5px solid transparent}
.arrow.right:after{right:-2px;border-left:8px solid #2e7d32}
.arrow.left:after{left:-2px;border-right:8px solid #1565c0}
.arrow.lost.right:after{border-left-color:#c62828}.arrow.lost.left:after{border-right-color:#c62828}
.arrow.heartbeat{opacity:.45}
.arrow .label{font-family:monospace;font-size:12px;background:#fff;padding:0 4px;border-radius:3px}
.arrow .when{font-size:11px;color:#666;margin-left:6px}
.arrow.lost .when{color:#c62828;font-weight:700}
.model .stream{white-space:nowrap;font-family:monospace}
.model .ok{color:#2e7d32}.model .pending{color:#ef6c00}
.violation{margin-top:16px;border:2px solid #c62828;background:#ffebee;padding:10px;border-radius:6px}
.violation pre{white-space:pre-wrap;margin:4px 0}
.legend span{margin-right:8px}
"""

JS = """
document.querySelectorAll('tr.step').forEach(function(row){
  row.style.cursor='pointer';
  row.addEventListener('click',function(){
    var n=row.nextElementSibling;
    while(n&&!n.classList.contains('step')){n.hidden=!n.hidden;n=n.nextElementSibling;}
  });
});
var v=document.getElementById('violating-event')||document.getElementById('violating-step');
if(v){v.scrollIntoView({block:'center'});}
"""


def _num(lane: str) -> int:
    tail = lane.partition(":")[2]
    return int(tail) if tail.isdigit() else 0


def lanes_of(recording: dict) -> list[str]:
    """Client lanes, the network, other peers, the server lanes (frames' receivers included)."""
    seen = set()
    for part in [recording.get("initial", {})] + recording.get("steps", []):
        for ev in part.get("events", []):
            seen.add(ev["lane"])
            detail = ev.get("detail")
            if ev["kind"] == "frame" and isinstance(detail, dict) and isinstance(detail.get("to"), str):
                seen.add(detail["to"])
    clients = sorted((l for l in seen if l.startswith("client")), key=lambda l: (_num(l), l))
    servers = sorted((l for l in seen if l.startswith("server")), key=lambda l: (_num(l), l))
    others = sorted(l for l in seen if l not in clients and l not in servers and l != "net")
    return (clients or ["client:0"]) + ["net"] + others + (servers or ["server"])


def _label(lane: str) -> str:
    return "network" if lane == "net" else lane


def _detail(detail: Any) -> str:
    return detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True)


def _css_class(ev: dict) -> str:
    kind = str(ev["kind"])
    text = (kind + " " + _detail(ev.get("detail"))).lower()
    if kind == "fault":
        return "fault"
    if any(w in text for w in DROP_WORDS) and kind != "frame":
        return "drop"
    return kind if kind in ("frame", "status", "recovery") else ""


def _t(ev: dict) -> str:
    return f'<td class="t">{ev["t"]:.3f}</td>' if isinstance(ev.get("t"), (int, float)) else '<td class="t"></td>'


def _is_arrow(ev: dict, lanes: list[str]) -> bool:
    d = ev.get("detail")
    return (ev["kind"] == "frame" and isinstance(d, dict) and d.get("to") in lanes and ev["lane"] in lanes
            and d.get("to") != ev["lane"])


def _arrow_row(ev: dict, lanes: list[str], mark: str) -> str:
    d = ev["detail"]
    a, b = lanes.index(ev["lane"]), lanes.index(d["to"])
    lo, hi = min(a, b), max(a, b)
    way = "right" if b > a else "left"
    arrived = d.get("arrived")
    if isinstance(arrived, (int, float)):
        when = f"arrived {arrived:.3f} (+{(arrived - ev['t']) * 1000:.0f} ms)"
        lost = ""
    else:
        when, lost = "never arrived (lost with its link, or still in flight)", " lost"
    kind = html.escape(str(d.get("what", "frame")))
    header = d.get("header") if isinstance(d.get("header"), dict) else {}
    beat = " heartbeat" if header.get("t") in ("ping", "pong") or d.get("what") in ("ping", "pong") else ""
    title = html.escape(json.dumps(d.get("header", d.get("summary")), sort_keys=True, ensure_ascii=False))
    cells = [_t(ev)] + ["<td></td>"] * lo
    cells.append(
        f'<td class="wire" colspan="{hi - lo + 1}"><div class="arrow {way} {html.escape(str(d.get("dir", "")))}{lost}{beat}{mark}"'
        f' data-kind="frame" data-what="{kind}" title="{title}"><span class="label">'
        f'{html.escape(str(d.get("summary", "")))}</span><span class="when">{html.escape(when)}</span></div></td>'
    )
    cells += ["<td></td>"] * (len(lanes) - hi - 1) + ['<td class="model"></td>']
    return '<tr class="event frame">' + "".join(cells) + "</tr>"


def _event_row(ev: dict, lanes: list[str], mark: str = "") -> str:
    if _is_arrow(ev, lanes):
        return _arrow_row(ev, lanes, mark)
    cells = [_t(ev)]
    for lane in lanes:
        if lane == ev["lane"]:
            detail = _detail(ev.get("detail"))
            arrow = "→ " if " c2s" in f" {detail}" else "← " if " s2c" in f" {detail}" else ""
            text = html.escape(f'{arrow}{ev["kind"]}: {detail}')
            ident = ' id="violating-event"' if mark else ""
            cells.append(f'<td><span class="ev {_css_class(ev)}{mark}"{ident} '
                         f'data-kind="{html.escape(str(ev["kind"]))}">{text}</span></td>')
        else:
            cells.append("<td></td>")
    cells.append('<td class="model"></td>')
    return "<tr class=\"event\">" + "".join(cells) + "</tr>"


def render_model(state: Any) -> str:
    """The model's expectation after a step: per stream, delivered of expected and the outcome."""
    if state is None:
        return ""
    if not isinstance(state, dict) or not isinstance(state.get("streams"), dict):
        return html.escape(json.dumps(state, sort_keys=True))
    lines = []
    if state.get("restarts"):
        lines.append(f"server restarts: {int(state['restarts'])}")
    for key, st in sorted(state["streams"].items()):
        if not isinstance(st, dict):
            continue
        done = st.get("outcome")
        want = st.get("terminal_requested")
        delivered, expected = st.get("delivered"), st.get("expected")
        ok = "ok" if delivered == expected and (done or not want) else "pending"
        end = f" {done}" if done else (f" → {want}" if want else " open")
        lines.append(f'<div class="stream {ok}">stream {html.escape(str(key))}: {delivered}/{expected}'
                     f'{html.escape(str(end))}</div>')
    title = html.escape(json.dumps(state, sort_keys=True))
    return f'<div class="model" title="{title}">' + "".join(lines) + "</div>"


def _violating_event(events: list[dict], where: str | None) -> int | None:
    """Index of the event that showed the violation: the last thing the session named by
    ``where`` observed in the violating step (a chunk, an outcome, a status event)."""
    m = re.search(r"session (\d+)", where or "")
    lane = f"client:{m.group(1)}" if m else None
    for kinds in OBSERVATIONS:
        for i in range(len(events) - 1, -1, -1):
            ev = events[i]
            if ev["kind"] == kinds and (lane is None or ev["lane"] == lane):
                return i
    return None


def render_html(trace: dict) -> str:
    rec = trace.get("recording") or {"initial": {"events": []}, "steps": []}
    lanes = lanes_of(rec)
    head = "".join(f"<th>{html.escape(_label(l))}</th>" for l in lanes)
    violation = trace.get("invariant") or rec.get("violation")
    bad_step = violation.get("step") if isinstance(violation, dict) else None
    where = violation.get("where") if isinstance(violation, dict) else None
    rows = []
    ncols = len(lanes) + 2
    parts = [("setup", rec.get("initial", {}))] + list(enumerate(rec.get("steps", []), start=1))
    for i, step in parts:
        events = sorted(step.get("events", []), key=lambda e: e["t"] if isinstance(e.get("t"), (int, float)) else 0)
        violating = i == (bad_step if bad_step else "setup")
        cls = "step violating" if violating else "step"
        ident = ' id="violating-step"' if violating else ""
        if i == "setup":
            if not events:
                continue
            rows.append(f'<tr class="{cls}"{ident}><td colspan="{ncols - 1}">setup</td>'
                        f'<td class="model">{render_model(step.get("state"))}</td></tr>')
        else:
            args = ", ".join(f"{k}={v}" for k, v in step.get("args", {}).items())
            rows.append(
                f'<tr class="{cls}" id="step-{i}"><td class="t">#{i}</td>'
                f'<td colspan="{len(lanes)}"{ident}>state.{html.escape(step["rule"])}({html.escape(args)})</td>'
                f'<td class="model">{render_model(step.get("state"))}</td></tr>'
            )
        mark_at = _violating_event(events, where) if violating else None
        rows.extend(_event_row(ev, lanes, " violating" if n == mark_at else "") for n, ev in enumerate(events))
    err = trace.get("error") or {}
    if violation:
        where_text = f" at {html.escape(str(where))}" if where else ""
        vbox = (
            f'<div class="violation" id="violation"><b>Invariant violated: '
            f'{html.escape(str(violation["invariant"]))}</b>{where_text} (after step {violation.get("step", "?")})'
            f'<pre>expected: {html.escape(json.dumps(violation["expected"], ensure_ascii=False))}</pre>'
            f'<pre>actual:   {html.escape(json.dumps(violation["actual"], ensure_ascii=False))}</pre></div>'
        )
    elif err:
        vbox = (f'<div class="violation" id="violation"><b>{html.escape(err.get("type", ""))}</b>'
                f'<pre>{html.escape(err.get("message", ""))}</pre></div>')
    else:
        vbox = '<div class="violation" id="violation" style="border-color:#2e7d32;background:#e8f5e9">no failure</div>'
    program = html.escape(trace.get("program") or "")
    opts = html.escape(json.dumps(trace.get("options", {}), sort_keys=True))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>statemodel timeline</title>
<style>{CSS}</style></head><body>
<h1>statemodel timeline</h1>
<div class="meta">machine {html.escape(str(trace.get("machine", "")))} · options {opts} · seed {html.escape(str(trace.get("seed", "")))}</div>
<div class="legend"><span class="ev frame">frame (arrow: sender → receiver)</span><span class="ev fault">fault</span><span class="ev drop">drop / close</span><span class="ev status">status</span><span class="ev recovery">recovery</span><span class="ev violating">violation</span> (click a step to fold it)</div>
{vbox}
<table class="msc"><thead><tr><th style="width:70px">t (s)</th>{head}<th class="model">model expects</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
<details><summary>step program</summary><pre>{program}</pre></details>
<script>{JS}</script>
</body></html>
"""
