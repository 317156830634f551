"""Time, examples and shrunk length to catch each reference mutant (DESIGN.md §6, §7).

Uses ``statemodel.mutants.hunt`` when the lead's module provides it; until then a small
hunt loop of our own: seeded batches of generated examples (Hypothesis' default phases
minus ``explain``, no database) until one fails, then Hypothesis shrinks it and we count
the steps of the program it prints. Each hunt runs in a subprocess with a hard wall-clock
bound, two at a time, so one slow mutant cannot stall the benchmark.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from typing import Any

from statemodel.fuzz.causes import program_steps

BATCH = 25  # examples per seeded Hypothesis run; the budget is checked between runs


def _own_hunt(name: str, budget_seconds: float, seed: int) -> dict[str, Any]:
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis import seed as hseed
    from hypothesis.stateful import run_state_machine_as_test

    from statemodel.machine import MachineOptions, machine_class

    base = machine_class(MachineOptions(mutants=frozenset({name})))
    outer = sys.exc_info()[1]  # an exception our caller is handling is not a failure
    seen = {"examples": 0, "first_failure": None, "invariant": None}

    class Hunted(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            seen["examples"] += 1
            super().__init__()

        def teardown(self) -> None:
            escaping = sys.exc_info()[1]  # the exception ending this example, if any
            if escaping is outer:
                escaping = None
            try:
                super().teardown()
            except Exception as exc:
                escaping = escaping or exc
                raise
            finally:
                if isinstance(escaping, Exception) and seen["first_failure"] is None:
                    seen["first_failure"] = (time.perf_counter(), seen["examples"])
                    seen["invariant"] = getattr(escaping, "invariant", type(escaping).__name__)
                    # Announce it before shrinking starts: a hunt killed at its bound while
                    # shrinking still counts as caught (without a shrunk length).
                    print(json.dumps({"event": "first_failure", "seconds": seen["first_failure"][0] - start,
                                      "examples": seen["examples"], "invariant": seen["invariant"]}),
                          flush=True)

    Hunted.__name__ = base.__name__
    config = settings(
        max_examples=BATCH, database=None, deadline=None, stateful_step_count=50,
        phases=(Phase.explicit, Phase.generate, Phase.shrink), print_blob=False,
        suppress_health_check=list(HealthCheck),
    )
    start = time.perf_counter()
    run = 0
    while time.perf_counter() - start < budget_seconds:
        try:
            run_state_machine_as_test(hseed(seed * 100_003 + run)(Hunted), settings=config)
        except Exception as exc:  # noqa: BLE001 - a failure is the catch we are hunting for
            program = "\n".join(n for n in getattr(exc, "__notes__", []) if "state." in n)
            first_t, first_n = seen["first_failure"] or (time.perf_counter(), seen["examples"])
            return {
                "name": name, "caught": True,
                "seconds": time.perf_counter() - start,
                "seconds_to_first_failure": first_t - start,
                "examples": first_n,
                "shrunk_steps": program_steps(program),
                "invariant": getattr(exc, "invariant", seen["invariant"] or type(exc).__name__),
            }
        run += 1
    return {"name": name, "caught": False, "seconds": time.perf_counter() - start,
            "examples": seen["examples"], "shrunk_steps": None, "invariant": None}


def hunt(name: str, budget_seconds: float, seed: int = 0) -> dict[str, Any]:
    """One mutant: the lead's ``statemodel.mutants.hunt`` if present, else our loop."""
    try:
        from statemodel.mutants import hunt as lead_hunt  # type: ignore[import-not-found]
    except ImportError:
        lead_hunt = None
    if lead_hunt is None:  # outside the except block: its ImportError must not look like a failure
        return _own_hunt(name, budget_seconds, seed)
    result = lead_hunt(name, budget_seconds, seed)
    result = dict(result.to_json() if hasattr(result, "to_json") else result)
    result.pop("program", None)  # long; the fuzz report keeps it
    result.setdefault("name", name)
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
