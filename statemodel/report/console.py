"""Print a recorded run as a step-by-step timeline in the terminal (rich)."""

from __future__ import annotations

import json

from rich.console import Console
from rich.markup import escape

STYLE = {"fault": "bold red", "status": "yellow", "frame": "green", "recovery": "magenta"}


def _detail(detail) -> str:
    if isinstance(detail, dict) and "summary" in detail and "to" in detail:  # a frame on the wire
        arrived = detail.get("arrived")
        when = f"arrived {arrived:.3f}" if isinstance(arrived, (int, float)) else "never arrived"
        return f"→ {detail['to']}: {detail['summary']} ({when})"
    return detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True)


def print_timeline(recording: dict, console: Console, error: tuple[str, str] | None = None) -> None:
    def events(evs):
        for ev in evs:
            style = STYLE.get(ev["kind"], "")
            line = f"    t={ev['t']:.3f}  {ev['lane']:<10} {ev['kind']:<9} {escape(_detail(ev.get('detail')))}"
            console.print(f"[{style}]{line}[/]" if style else line, highlight=False)

    initial = recording.get("initial", {})
    if initial.get("events"):
        console.print("[bold]setup[/]")
        events(initial["events"])
    for i, step in enumerate(recording.get("steps", []), start=1):
        args = ", ".join(f"{k}={v}" for k, v in step.get("args", {}).items())
        console.print(f"[bold]#{i} state.{escape(step['rule'])}({escape(args)})[/]", highlight=False)
        events(step.get("events", []))
        if step.get("state") is not None:
            console.print(f"    [dim]model: {escape(json.dumps(step['state'], sort_keys=True))}[/]",
                          highlight=False)
    v = recording.get("violation")
    if v:
        where = f" at {v['where']}" if v.get("where") else ""
        console.print(f"[bold red]INVARIANT VIOLATED: {escape(v['invariant'])}{escape(where)}[/] (after step {v.get('step')})")
        console.print(f"  expected: {escape(json.dumps(v['expected']))}", highlight=False)
        console.print(f"  actual:   {escape(json.dumps(v['actual']))}", highlight=False)
    elif error:
        console.print(f"[bold red]{escape(error[0])}: {escape(error[1])}[/]")
