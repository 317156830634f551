"""timeline.html: a self-contained message-sequence chart of one recorded run.

Columns are lanes (clients, network, servers), rows are steps and the events inside them;
faults and drops are highlighted and the violated invariant (expected vs actual) closes the
page. Inline CSS and JS only, so it opens from a CI artefact with no network.
"""

from __future__ import annotations

import html
import json
from typing import Any

DROP_WORDS = ("drop", "disconnect", "close", "abort", "reset", "rst", "fin", "partition", "truncate")

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:16px;color:#222;background:#fff}
h1{font-size:20px;margin:0 0 4px} .meta{color:#555;margin-bottom:12px}
table.msc{border-collapse:collapse;width:100%;table-layout:fixed}
.msc th{position:sticky;top:0;background:#263238;color:#fff;padding:6px;font-weight:600}
.msc td{padding:3px 6px;vertical-align:top;border-left:2px solid #cfd8dc;word-wrap:break-word}
.msc td.t{border-left:none;color:#777;font-family:monospace;width:70px}
.msc tr.step td{background:#eceff1;border-top:2px solid #90a4ae;font-family:monospace;font-weight:600}
.msc tr.step td.state{font-weight:400;color:#455a64}
.ev{display:inline-block;border-radius:4px;padding:1px 6px;font-family:monospace;font-size:12px;background:#e3f2fd}
.ev.frame{background:#e8f5e9}.ev.status{background:#fff8e1}
.ev.fault{background:#ffcdd2;border:1px solid #c62828;font-weight:700}
.ev.drop{background:#ffe0b2;border:1px solid #ef6c00}
.ev.recovery{background:#d1c4e9}
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
"""


def lanes_of(recording: dict) -> list[str]:
    seen = set()
    for part in [recording.get("initial", {})] + recording.get("steps", []):
        for ev in part.get("events", []):
            seen.add(ev["lane"])

    def num(lane: str) -> int:
        tail = lane.partition(":")[2]
        return int(tail) if tail.isdigit() else 0

    clients = sorted((l for l in seen if l.startswith("client")), key=lambda l: (num(l), l))
    servers = sorted((l for l in seen if l.startswith("server")), key=lambda l: (num(l), l))
    others = sorted(l for l in seen if l not in clients and l not in servers and l != "net")
    return (clients or ["client:0"]) + ["net"] + others + (servers or ["server:0"])


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


def _event_row(ev: dict, lanes: list[str]) -> str:
    cells = [f'<td class="t">{ev["t"]:.3f}</td>' if isinstance(ev.get("t"), (int, float)) else '<td class="t"></td>']
    for lane in lanes:
        if lane == ev["lane"]:
            detail = _detail(ev.get("detail"))
            arrow = "→ " if " c2s" in f" {detail}" else "← " if " s2c" in f" {detail}" else ""
            text = html.escape(f'{arrow}{ev["kind"]}: {detail}')
            cells.append(f'<td><span class="ev {_css_class(ev)}" data-kind="{html.escape(str(ev["kind"]))}">{text}</span></td>')
        else:
            cells.append("<td></td>")
    cells.append("<td></td>")
    return "<tr class=\"event\">" + "".join(cells) + "</tr>"


def render_html(trace: dict) -> str:
    rec = trace.get("recording") or {"initial": {"events": []}, "steps": []}
    lanes = lanes_of(rec)
    head = "".join(f"<th>{html.escape(_label(l))}</th>" for l in lanes)
    rows = []
    ncols = len(lanes) + 2
    initial = rec.get("initial", {})
    if initial.get("events"):
        rows.append(f'<tr class="step"><td colspan="{ncols}">setup</td></tr>')
        rows.extend(_event_row(ev, lanes) for ev in initial["events"])
    for i, step in enumerate(rec.get("steps", []), start=1):
        args = ", ".join(f"{k}={v}" for k, v in step.get("args", {}).items())
        state = html.escape(json.dumps(step.get("state"), sort_keys=True)) if step.get("state") is not None else ""
        rows.append(
            f'<tr class="step" id="step-{i}"><td class="t">#{i}</td>'
            f'<td colspan="{len(lanes)}">state.{html.escape(step["rule"])}({html.escape(args)})</td>'
            f'<td class="state">{state}</td></tr>'
        )
        rows.extend(_event_row(ev, lanes) for ev in step.get("events", []))
    violation = trace.get("invariant") or rec.get("violation")
    err = trace.get("error") or {}
    if violation:
        vbox = (
            f'<div class="violation" id="violation"><b>Invariant violated: '
            f'{html.escape(str(violation["invariant"]))}</b> (after step {violation.get("step", "?")})'
            f'<pre>expected: {html.escape(json.dumps(violation["expected"]))}</pre>'
            f'<pre>actual:   {html.escape(json.dumps(violation["actual"]))}</pre></div>'
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
<div class="legend"><span class="ev frame">frame</span><span class="ev fault">fault</span><span class="ev drop">drop / close</span><span class="ev status">status</span><span class="ev recovery">recovery</span> (click a step to fold it)</div>
<table class="msc"><thead><tr><th style="width:70px">t (s)</th>{head}<th>model state</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
{vbox}
<details><summary>step program</summary><pre>{program}</pre></details>
<script>{JS}</script>
</body></html>
"""
