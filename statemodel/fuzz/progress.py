"""Live progress: a rich table on a terminal, plain periodic lines otherwise.

Counts come from the recorder collectors (faults by kind = events of kind "fault"), never
from scraping output. Wall time is read here only to pace the display and compute steps/s.
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
        if self._live is not None:
            now = time.monotonic()
            if now - self._last_line >= 0.25:  # redraw at most 4 times a second
                self._last_line = now
                self._live.update(self._table())
        elif time.monotonic() - self._last_line >= self.interval:
            self._line()

    def failure(self, title: str) -> None:
        self.failures += 1
        print(f"FAILURE: {title}", file=self.stream, flush=True)

    def totals(self) -> dict:
        faults: dict[str, int] = {}
        slowest = None
        for s in self.snapshots.values():
            for k, v in s.get("faults", {}).items():
                faults[k] = faults.get(k, 0) + v
            r = s.get("slowest_recovery")
            if r is not None and (slowest is None or r > slowest):
                slowest = r
        elapsed = max(time.monotonic() - self.started, 1e-9)
        steps = sum(s.get("steps", 0) for s in self.snapshots.values())
        return {
            "examples": sum(s.get("examples", 0) for s in self.snapshots.values()),
            "steps": steps,
            "steps_per_s": steps / elapsed,
            "faults": dict(sorted(faults.items())),
            "slowest_recovery": slowest,
            "failures": self.failures,
            "elapsed": elapsed,
        }

    def _line(self, final: bool = False) -> None:
        self._last_line = time.monotonic()
        t = self.totals()
        faults = ", ".join(f"{k}={v}" for k, v in t["faults"].items()) or "none"
        slow = "-" if t["slowest_recovery"] is None else f"{t['slowest_recovery']:.3f}s"
        print(
            f"[{'done' if final else 'fuzz'} {t['elapsed']:.0f}s] examples={t['examples']} "
            f"steps={t['steps']} steps/s={t['steps_per_s']:.0f} faults: {faults} "
            f"slowest recovery={slow} failures={t['failures']}",
            file=self.stream, flush=True,
        )

    def _table(self):
        from rich.table import Table

        t = self.totals()
        table = Table(title="statemodel fuzz", show_header=False)
        table.add_row("examples", str(t["examples"]))
        table.add_row("steps", f"{t['steps']} ({t['steps_per_s']:.0f}/s)")
        table.add_row("faults", ", ".join(f"{k}={v}" for k, v in t["faults"].items()) or "none")
        slow = t["slowest_recovery"]
        table.add_row("slowest recovery", "-" if slow is None else f"{slow:.3f} s ({self.clock})")
        table.add_row("failures", f"[red]{t['failures']}[/red]" if t["failures"] else "0")
        table.add_row("elapsed", f"{t['elapsed']:.0f} s")
        return table
