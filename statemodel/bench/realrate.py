"""Real-socket step rate (issue 14): StreamMachine over loopback beside the sim, same run.

- ``ws``: ``--target ws://…`` against ``statemodel serve --app script`` in its own process,
  through the loopback fault proxy;
- ``tcp``: the reference target on ``--transport tcp`` (server in the machine's run);
- ``netns``: the same across a network namespace (root only; left out otherwise).

Each alternates with the sim reference machine over ``rounds``, so a neighbour's load hits
both alike; the figure is steps/s with the sim's steps/s as its anchor. Failures on the
correct implementation are counted (false failures).

One machine over real sockets waits on real timers (dead-peer detection, reconnects) and
uses ~11% of a core, so a run gets its rate from workers side by side: :func:`fuzz_rate`
times ``statemodel fuzz --workers N`` as a whole (process start-up included) beside one
worker, same examples per worker. Usage: ``python -m statemodel.bench.realrate [seconds]``.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext

from statemodel.bench.steprate import _machine_rate
from statemodel.target.served import script_server

TRANSPORTS = ("ws", "tcp", "netns")


def _merge(parts: list[dict]) -> dict:
    out = {k: sum(p[k] for p in parts) for k in ("steps", "examples", "failures", "seconds")}
    return out | {"steps_per_s": out["steps"] / out["seconds"], "examples_per_s": out["examples"] / out["seconds"]}


def measure(seconds: float = 60.0, seed: int = 0, rounds: int = 2, transports=TRANSPORTS,
            examples: int = 5) -> dict:
    """``seconds`` of real-socket fuzzing per transport (the sim gets a quarter beside each), in
    runs of ``examples`` examples (a run is never cut short: the time is a lower bound)."""
    from statemodel.machine import MachineOptions, machine_class
    from statemodel.net.netns import unavailable_reason

    wanted = [t for t in transports if t != "netns" or unavailable_reason() is None]
    sim_cls = machine_class(MachineOptions())
    result: dict = {"rounds": rounds, "skipped": [t for t in transports if t not in wanted]}
    with (script_server() if "ws" in wanted else nullcontext()) as url:
        classes = {"ws": url and machine_class(MachineOptions(target=url, transport="tcp")),
                   "tcp": machine_class(MachineOptions(transport="tcp")),
                   "netns": machine_class(MachineOptions(transport="netns"))}
        for name in wanted:
            sim, real = [], []
            for r in range(rounds):
                sim.append(_machine_rate(sim_cls, seconds / 4 / rounds, examples, seed + 1000 * r))
                real.append(_machine_rate(classes[name], seconds / rounds, examples, seed + 1000 * r))
            result[name] = {"real": _merge(real), "sim": _merge(sim)}
            result[name]["ratio"] = result[name]["real"]["steps_per_s"] / result[name]["sim"]["steps_per_s"]
    return result


def fuzz_rate(name: str, workers: int, examples_per_worker: int, seed: int = 0) -> dict:
    """``statemodel fuzz`` on transport ``name`` (ws, tcp or netns) with ``workers`` workers and
    with one (one run, then the other), ``examples_per_worker`` examples each. Steps/s are the
    whole run's, wall time from start to summary; failures are false failures."""
    from statemodel.fuzz.config import FuzzConfig
    from statemodel.fuzz.workers import run as run_fuzz

    def one(n: int, url: str | None) -> dict:
        config = FuzzConfig(target=url or "reference", transport="netns" if name == "netns" else "tcp",
                            workers=n, examples=n * examples_per_worker, seed=seed, profile="dev",
                            shrink_budget=0.0)
        result = run_fuzz(config)
        steps = sum(w.steps for w in result.workers)
        return {"workers": n, "steps": steps, "examples": sum(w.examples for w in result.workers),
                "failures": len(result.all_failures) + sum(1 for w in result.workers if w.error),
                # what they were: a false failure in a bench must be diagnosable afterwards
                "found": [f.title for f in result.all_failures] + result.errors,
                "seconds": result.elapsed, "steps_per_s": steps / result.elapsed}

    with (script_server() if name == "ws" else nullcontext()) as url:
        single = one(1, url)
        many = one(workers, url)
    return {"single": single, "many": many, "speedup": many["steps_per_s"] / single["steps_per_s"]}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    result = measure(float(args[0]) if args else 60.0)
    for name in TRANSPORTS:
        if name in result:
            r = result[name]
            print(f"{name}: {r['real']['steps_per_s']:.1f} steps/s ({r['real']['examples_per_s']:.2f} examples/s, "
                  f"{r['real']['failures']} failures), sim {r['sim']['steps_per_s']:.0f} steps/s, "
                  f"ratio {r['ratio']:.3f}")
    for name in result["skipped"]:
        print(f"{name}: skipped (netns needs root)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
