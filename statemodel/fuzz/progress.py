"""Live progress: a rich table on a terminal, plain periodic lines otherwise.

Counts come from the recorder collectors (faults by kind = events of kind "fault"), never
from scraping output; examples Hypothesis generated, runs of the shrinker and replays are
counted apart. Shrinking is its own phase: which failure, for how long (against its
budget), and the shortest failing program so far. Wall time is read here only to pace the
display and compute steps/s.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, workers: int, stream: TextIO | None = None, interval: float = 5.0,
                 live: bool | None = None, clock: str = "virtual"):
        self.stream = stream or sys.stderr
        self.clock = clock  # "virtual" (sim) or "real" (tcp, netns): what recovery times are in
        self.interval = interval
        self.snapshots: dict[int, dict] = {w: {} for w in range(workers)}
        self.failures = 0
        self.started = time.monotonic()
        self._last_line = self.started
        self._announced: dict[int, int] = {}  # worker -> failures already announced
        self._errors: dict[int, int] = {}  # worker -> tester errors already announced
        self.live = self.stream.isatty() if live is None else live
        self._live = None

    def __enter__(self) -> "Progress":
        if self.live:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self._table(), console=Console(file=self.stream),
                              refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.update(self._table())
            self._live.__exit__(*exc)
            self._live = None
        else:
            self._line(final=True)

    def update(self, worker: int, snapshot: dict) -> None:
        self.snapshots[worker] = snapshot
        found = snapshot.get("found") or []
        if len(found) > self._announced.get(worker, 0) and snapshot.get("phase") != "done":
            for title in found[self._announced.get(worker, 0):]:
                self._print(f"FOUND: {title}" + (f" (worker {worker})" if len(self.snapshots) > 1 else "")
                            + "; shrinking it")
            self._announced[worker] = len(found)
            self._last_line = 0.0  # show the shrink phase at once
        errors = snapshot.get("tester_errors") or []
        for error in errors[self._errors.get(worker, 0):]:  # not the target's: no shrinking, next batch
            self._print(f"ERROR: {error}" + (f" (worker {worker})" if len(self.snapshots) > 1 else ""))
        self._errors[worker] = len(errors)
        if self._live is not None:
            now = time.monotonic()
            if now - self._last_line >= 0.25:  # redraw at most 4 times a second
                self._last_line = now
                self._live.update(self._table())
        elif time.monotonic() - self._last_line >= self.interval:
            self._line()

    def failure(self, title: str) -> None:
        self.failures += 1
        self._print(f"FAILURE: {title}")

    def _print(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)

    def totals(self) -> dict:
        faults: dict[str, int] = {}
        slowest = None
        shrinking = None
        for w, s in sorted(self.snapshots.items()):
            for k, v in s.get("faults", {}).items():
                faults[k] = faults.get(k, 0) + v
            r = s.get("slowest_recovery")
            if r is not None and (slowest is None or r > slowest):
                slowest = r
            if shrinking is None and s.get("phase") in ("shrink", "replay") and s.get("shrink"):
                shrinking = dict(s["shrink"], worker=w, phase=s["phase"], failures=s.get("found") or [])
        elapsed = max(time.monotonic() - self.started, 1e-9)
        steps = sum(s.get("steps", 0) for s in self.snapshots.values())
        work = sum(s.get("all_steps", s.get("steps", 0)) for s in self.snapshots.values())
        found = sum(len(s.get("found") or []) for s in self.snapshots.values())
        return {
            "examples": sum(s.get("examples", 0) for s in self.snapshots.values()),
            "steps": steps,
            "steps_per_s": work / elapsed,  # every step run: generating, shrinking, replaying
            "shrink_runs": sum(s.get("shrink_runs", 0) for s in self.snapshots.values()),
            "replays": sum(s.get("replays", 0) for s in self.snapshots.values()),
            "faults": dict(sorted(faults.items())),
            "slowest_recovery": slowest,
            "failures": max(self.failures, found),
            "shrinking": shrinking,
            "elapsed": elapsed,
        }

    @staticmethod
    def _shrink_text(s: dict) -> str:
        what = s["failures"][0] if len(s["failures"]) == 1 else f"{len(s['failures'])} failures"
        best = "-" if s.get("best_steps") is None else f"{s['best_steps']} steps"
        budget = "no budget" if s.get("budget") is None else f"budget {s['budget']:g}s"
        if s["phase"] == "replay":
            why = "interrupted" if s.get("stopped") == "interrupted" else "budget spent"
            return f"{what}: {why}, replaying the smallest program ({best})"
        return f"{what}: {s['seconds']:.0f}s ({budget}), smallest failing program so far {best}"

    def _line(self, final: bool = False) -> None:
        self._last_line = time.monotonic()
        t = self.totals()
        faults = ", ".join(f"{k}={v}" for k, v in t["faults"].items()) or "none"
        slow = "-" if t["slowest_recovery"] is None else f"{t['slowest_recovery']:.3f}s ({self.clock})"
        phase = "done" if final else ("shrink" if t["shrinking"] else "fuzz")
        line = (f"[{phase} {t['elapsed']:.0f}s] examples={t['examples']} steps={t['steps']} "
                f"steps/s={t['steps_per_s']:.0f} shrink runs={t['shrink_runs']} replays={t['replays']} "
                f"faults: {faults} slowest recovery={slow} failures={t['failures']}")
        if t["shrinking"] and not final:
            line += f"\n  shrinking {self._shrink_text(t['shrinking'])}"
        print(line, file=self.stream, flush=True)

    def _table(self):
        from rich.markup import escape
        from rich.table import Table

        t = self.totals()
        table = Table(title="statemodel fuzz", show_header=False)
        table.add_row("phase", "shrinking" if t["shrinking"] else "generating examples")
        table.add_row("examples", str(t["examples"]))
        table.add_row("steps", f"{t['steps']} ({t['steps_per_s']:.0f}/s)")
        table.add_row("shrink runs", str(t["shrink_runs"]))
        table.add_row("replays", str(t["replays"]))
        table.add_row("faults", ", ".join(f"{k}={v}" for k, v in t["faults"].items()) or "none")
        slow = t["slowest_recovery"]
        table.add_row("slowest recovery", "-" if slow is None else f"{slow:.3f} s ({self.clock})")
        table.add_row("failures", f"[red]{t['failures']}[/red]" if t["failures"] else "0")
        if t["shrinking"]:
            table.add_row("shrinking", escape(self._shrink_text(t["shrinking"])))
        table.add_row("elapsed", f"{t['elapsed']:.0f} s")
        return table
