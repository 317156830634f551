"""Time, examples and shrunk length to catch each reference mutant (DESIGN.md §6, §7).

Each hunt is ``statemodel.mutants.hunt`` (what ``statemodel mutants`` runs) in a subprocess
with a hard wall-clock bound, so one slow mutant cannot stall the benchmark.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from typing import Any


def hunt(name: str, budget_seconds: float, seed: int = 0) -> dict[str, Any]:
    """One mutant, hunted as ``statemodel mutants`` does (``statemodel.mutants.hunt``)."""
    from statemodel.mutants import hunt as mutant_hunt

    result = mutant_hunt(name, budget_seconds, seed).to_json()
    result.pop("program", None)  # long; the fuzz report keeps it
    return result


def hunt_all(names: list[str], budget_seconds: float, seed: int = 0, parallel: int = 2) -> list[dict[str, Any]]:
    """Hunt every mutant in its own process, `parallel` at a time. The budget is wall-clock
    for catch *and* shrink (the §7 target): generation stops at 60% of it to leave time for
    the shrink, and a hunt still running at the budget is killed and reported as not caught."""
    grace = 0.5  # interpreter start-up
    pending = list(names)
    running: list[tuple[str, subprocess.Popen, float]] = []
    results: dict[str, dict[str, Any]] = {}
    while pending or running:
        while pending and len(running) < parallel:
            name = pending.pop(0)
            proc = subprocess.Popen(
                [sys.executable, "-m", "statemodel.bench.mutants", name, str(0.6 * budget_seconds), str(seed)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            running.append((name, proc, time.perf_counter()))
        time.sleep(0.05)
        for item in list(running):
            name, proc, started = item
            elapsed = time.perf_counter() - started
            if proc.poll() is None and elapsed < budget_seconds + grace:
                continue
            killed = proc.poll() is None
            if killed:
                proc.kill()
                proc.wait()
            results[name] = _collect(name, proc.stdout.read(), killed, elapsed, proc.returncode)
            proc.stdout.close()
            running.remove(item)
    return [results[n] for n in names]


def _collect(name: str, out: str, killed: bool, elapsed: float, code: int | None) -> dict[str, Any]:
    """The hunt's final line, or what its first-failure line says if it was killed while shrinking."""
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    final = [r for r in lines if "event" not in r]
    if final and not killed:
        return final[-1] | {"shrink_finished": final[-1]["caught"]}
    first = next((r for r in lines if r.get("event") == "first_failure"), None)
    return {"name": name, "caught": first is not None, "seconds": elapsed,
            "seconds_to_first_failure": first["seconds"] if first else None,
            "examples": first["examples"] if first else None, "shrunk_steps": None,
            "invariant": first["invariant"] if first else None, "shrink_finished": False,
            "error": "killed at the bound" if killed else f"hunt process exited {code}"}


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    caught = [r for r in results if r["caught"]]
    return {
        "mutants": len(results),
        "caught": len(caught),
        "shrunk": sum(1 for r in caught if r.get("shrink_finished", True)),
        "caught_fraction": len(caught) / len(results) if results else 0.0,
        "max_seconds": max((r["seconds"] for r in caught), default=None),
        "median_seconds": statistics.median(r["seconds"] for r in caught) if caught else None,
        "max_shrunk_steps": max((r["shrunk_steps"] or 0 for r in caught), default=None),
        "results": results,
    }


if __name__ == "__main__":
    print(json.dumps(hunt(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]))), flush=True)
