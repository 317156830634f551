"""Real-socket step rate (issue 14): StreamMachine over loopback beside the sim, same run.

- ``ws``: ``--target ws://…`` against ``statemodel serve --app script`` in its own process,
  through the loopback fault proxy;
- ``tcp``: the reference target on ``--transport tcp`` (server in the machine's run);
- ``netns``: the same across a network namespace (root only; left out otherwise).

Each alternates with the sim reference machine over ``rounds``, so a neighbour's load hits
both alike; the figure is steps/s with the sim's steps/s as its anchor. Failures on the
correct implementation are counted (false failures). Usage:
``python -m statemodel.bench.realrate [seconds]``.
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
