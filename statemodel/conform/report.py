"""The case table: conform.json (machine-readable) and conform.html (self-contained)."""

from __future__ import annotations

import html
import json
from pathlib import Path

from statemodel.conform.runner import CaseResult

COLORS = {"pass": "#2e7d32", "fail": "#c62828", "skip": "#757575", "error": "#ef6c00"}

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:16px;color:#222}
h1{font-size:20px;margin:0 0 4px}.meta{color:#555;margin-bottom:12px}
table{border-collapse:collapse;width:100%}th,td{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
th{background:#263238;color:#fff;position:sticky;top:0}
.v{font-weight:700;color:#fff;border-radius:4px;padding:1px 8px;font-family:monospace}
details pre{font-size:12px;background:#f5f5f5;padding:6px;white-space:pre-wrap;max-height:400px;overflow:auto}
.msg{font-family:monospace;font-size:12px;white-space:pre-wrap}
"""


def summary(results: list[CaseResult]) -> dict[str, int]:
    out = {"pass": 0, "fail": 0, "skip": 0, "error": 0}
    for r in results:
        out[r.verdict] += 1
    return out


def to_json(results: list[CaseResult], target: str, mutants, seconds: float) -> dict:
    return {"target": target, "mutants": sorted(mutants), "seconds": round(seconds, 3),
            "summary": summary(results), "cases": [r.to_json() for r in results]}


def frame_lines(frames: list[dict], dropped: int) -> str:
    lines = []
    for f in frames:
        arrow = "->" if f["dir"] == "c2s" else "<-"
        what = f.get("frame")
        if "close" in f:
            what = f"CLOSE {f['close']} {f.get('reason', '')}".rstrip()
        elif isinstance(what, dict):
            what = json.dumps(what, separators=(",", ":"), ensure_ascii=False)
        extra = f" +{f['payload']} bytes" if f.get("payload") else ""
        lines.append(f"{f['t']:>8.3f}  {f['conn']:<16} {arrow} {what}{extra}")
    if dropped:
        lines.append(f"... {dropped} more frames not kept")
    return "\n".join(lines)


def render_html(report: dict, results: list[CaseResult]) -> str:
    s = report["summary"]
    rows = []
    for r in results:
        c = r.case
        color = COLORS[r.verdict]
        detail = html.escape(frame_lines(r.frames, r.frames_dropped)) or "(no frames)"
        program = f"<details><summary>program</summary><pre>{html.escape(c.program)}</pre></details>" if c.program else ""
        rows.append(
            f"<tr><td><span class='v' style='background:{color}'>{r.verdict.upper()}</span></td>"
            f"<td>§{html.escape(c.section)}</td><td><b>{html.escape(c.name)}</b><br>{html.escape(c.title)}"
            f"<div class='msg'>{html.escape(r.message)}</div>{program}"
            f"<details><summary>{len(r.frames)} frames</summary><pre>{detail}</pre></details></td>"
            f"<td>{html.escape(c.scenario or '')}</td><td>{r.seconds:.2f}s</td></tr>")
    mutants = ", ".join(report["mutants"]) or "none"
    return (f"<!doctype html><meta charset='utf-8'><title>statemodel conform</title><style>{CSS}</style>"
            f"<h1>statemodel conform: {html.escape(report['target'])}</h1>"
            f"<div class='meta'>{s['pass']} passed, {s['fail']} failed, {s['skip']} skipped, {s['error']} errors "
            f"in {report['seconds']:.1f}s; mutants: {html.escape(mutants)}</div>"
            f"<table><tr><th>verdict</th><th>section</th><th>case</th><th>scenario</th><th>time</th></tr>"
            + "".join(rows) + "</table>")


def write(results: list[CaseResult], directory, target: str, mutants, seconds: float) -> Path:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    report = to_json(results, target, mutants, seconds)
    (out / "conform.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    (out / "conform.html").write_text(render_html(report, results))
    return out
