"""Step-rate benchmark: the trio bridge against a bare Hypothesis state machine.

DESIGN.md §7 targets a sim-mode step rate of at least half a bare machine's. Both machines
run in the same process, one after the other, with the same settings, so the ratio is
meaningful on any host; absolute numbers are not. Steps are counted by the machines
themselves (one per rule call).

Usage: ``python -m statemodel.bench.steprate [seconds]``; ``... steprate fixed [seeds]``: the
CPU cost per step of a fixed StreamMachine workload (`fixed_work`); ``... steprate floor [seeds]``:
the ratio trio-websocket alone allows (`library_floor`); ``... steprate compare
TREE,TREE[,...] [rounds]``: that cost for several source trees side by side (`compare_trees`).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import greenlet
import trio
from hypothesis import Phase, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from statemodel.bridge import TrioStateMachine

__all__ = ["compare_trees", "fixed_work", "measure", "measure_machine"]

_SETTINGS = settings(
    max_examples=20,
    database=None,
    phases=[Phase.generate],
    deadline=None,
    stateful_step_count=50,
)


class BareMachine(RuleBasedStateMachine):
    """Trivial rules: the anchor Hypothesis itself sets."""

    steps = 0

    def __init__(self) -> None:
        super().__init__()
        self.counter = 0

    @rule()
    def increment(self) -> None:
        BareMachine.steps += 1
        self.counter += 1

    @rule()
    def decrement(self) -> None:
        BareMachine.steps += 1
        self.counter -= 1

    @invariant()
    def bounded(self) -> None:
        assert abs(self.counter) <= 10_000


class BridgedMachine(TrioStateMachine):
    """The same rules, each also awaiting once through the trio bridge."""

    steps = 0

    def __init__(self) -> None:
        super().__init__()
        self.counter = 0

    @rule()
    def increment(self) -> None:
        BridgedMachine.steps += 1
        self.counter += 1
        self.run(trio.sleep, 0)

    @rule()
    def decrement(self) -> None:
        BridgedMachine.steps += 1
        self.counter -= 1
        self.run(trio.sleep, 0)

    @invariant()
    def bounded(self) -> None:
        assert abs(self.counter) <= 10_000


def _rate(machine: type, seconds: float) -> tuple[float, int]:
    machine.steps = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        run_state_machine_as_test(machine, settings=_SETTINGS)
        elapsed = time.perf_counter() - start
    return machine.steps / elapsed, machine.steps


def measure(seconds: float = 3.0) -> dict:
    """Run each machine for about ``seconds`` and report steps/s and the bridged/bare ratio."""
    bare_rate, bare_steps = _rate(BareMachine, seconds)
    bridged_rate, bridged_steps = _rate(BridgedMachine, seconds)
    return {
        "bare_steps_per_s": bare_rate,
        "bridged_steps_per_s": bridged_rate,
        "ratio": bridged_rate / bare_rate,
        "bare_steps": bare_steps,
        "bridged_steps": bridged_steps,
        "seconds_each": seconds,
    }


def _counting(base: type) -> type:
    """``base`` with honest step counting: Hypothesis calls ``check_invariants`` once before
    the first step and once after every step (initialize rules included), so steps are
    invariant checks minus examples; failing examples are counted too."""

    class Counted(base):  # type: ignore[misc, valid-type]
        examples = 0
        checks = 0

        def __init__(self) -> None:
            type(self).examples += 1
            super().__init__()

        def check_invariants(self, *args):
            type(self).checks += 1
            return super().check_invariants(*args)

    Counted.__name__ = base.__name__
    return Counted


def _machine_rate(machine: type, seconds: float, max_examples: int, seed: int) -> dict:
    from hypothesis import HealthCheck
    from hypothesis import seed as hseed

    counted = _counting(machine)
    config = settings(max_examples=max_examples, database=None, phases=[Phase.generate], deadline=None,
                      stateful_step_count=40, suppress_health_check=list(HealthCheck), print_blob=False)
    failures = 0
    runs = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        try:
            run_state_machine_as_test(hseed(seed + runs)(counted), settings=config)
        except Exception:  # noqa: BLE001 - counted: a failure on the correct implementation is a false failure
            failures += 1
        runs += 1
    elapsed = time.perf_counter() - start
    steps = counted.checks - counted.examples
    return {"steps_per_s": steps / elapsed, "steps": steps, "examples": counted.examples,
            "failures": failures, "seconds": elapsed}


def measure_machine(seconds: float = 10.0, seed: int = 0, rounds: int = 3) -> dict:
    """The real ``StreamMachine`` (reference target, sim, ``ci``-like but generate-only, no
    database) vs ``BareMachine``, same settings, same process, counted the same way.

    The two alternate over ``rounds`` (the bare one gets a quarter of the time: it is steady),
    so a neighbour's load on a shared host hits both sides alike. ``failures`` on the stream
    machine are runs that failed on the correct implementation (false failures)."""
    from statemodel.machine import MachineOptions, machine_class

    stream_cls = machine_class(MachineOptions())
    totals = {"bare": [], "stream": []}
    for r in range(rounds):
        totals["bare"].append(_machine_rate(BareMachine, seconds / 4 / rounds, 20, seed + 1000 * r))
        totals["stream"].append(_machine_rate(stream_cls, seconds / rounds, 5, seed + 1000 * r))

    def merge(parts: list[dict]) -> dict:
        out = {k: sum(p[k] for p in parts) for k in ("steps", "examples", "failures", "seconds")}
        return out | {"steps_per_s": out["steps"] / out["seconds"]}

    bare, stream = merge(totals["bare"]), merge(totals["stream"])
    return {"bare": bare, "stream": stream, "ratio": stream["steps_per_s"] / bare["steps_per_s"], "rounds": rounds}


def _fixed_config():
    from hypothesis import HealthCheck

    return settings(max_examples=5, database=None, phases=[Phase.generate], deadline=None,
                    stateful_step_count=40, suppress_health_check=list(HealthCheck), print_blob=False)


# One tree's side of `compare_trees`, run with ``python -c`` and that tree first on sys.path, so
# any checkout since `fixed_work` (session 8) can be measured, one from before this tool too:
# for each seed read from stdin,
# the CPU seconds and steps of that seed of the fixed work (as `fixed_work` runs it).
_WORKER = """
import sys, time
from hypothesis import HealthCheck, Phase, settings, seed
from hypothesis.stateful import run_state_machine_as_test
from statemodel.bench.steprate import _counting
from statemodel.machine import MachineOptions, machine_class

Counted = _counting(machine_class(MachineOptions()))
config = settings(max_examples=5, database=None, phases=[Phase.generate], deadline=None,
                  stateful_step_count=40, suppress_health_check=list(HealthCheck), print_blob=False)

def one(s):
    checks, examples = Counted.checks, Counted.examples
    start = time.process_time()
    try:
        run_state_machine_as_test(seed(s)(Counted), settings=config)
    except Exception:
        pass
    return time.process_time() - start, (Counted.checks - checks) - (Counted.examples - examples)

one(1000)
for line in sys.stdin:
    print(*one(int(line)), flush=True)
"""


def compare_trees(trees: list[str], rounds: int = 5, seeds: int = 10) -> dict:
    """CPU ms per step of the fixed work for each source tree (a checkout's root), measured side
    by side: one worker process per tree (``PYTHONPATH=tree``), seed by seed, the order
    rotating every seed, and each seed's *minimum* over ``rounds`` kept. A neighbour's load
    only ever adds CPU time (cache, a shared core), so the minimum is the figure it spoils
    least: two workers of the same tree agreed within 1.8-2.6% at load 2-3, where whole runs of
    `fixed_work` scattered by +-20% (BENCHMARKS.md, session 11). ``ratio`` is each tree's
    figure over the first tree's."""
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              cwd=os.path.abspath(tree), env=dict(os.environ, PYTHONPATH=os.path.abspath(tree)))
             for tree in trees]
    best: list[dict[int, float]] = [{} for _ in trees]
    steps: list[dict[int, int]] = [{} for _ in trees]
    try:
        for r in range(rounds):
            for s in range(seeds):
                for j in range(len(trees)):
                    i = (j + r + s) % len(trees)
                    procs[i].stdin.write(f"{s}\n")
                    procs[i].stdin.flush()
                    line = procs[i].stdout.readline()
                    if not line:
                        raise RuntimeError(f"the worker for {trees[i]} ended early (exit {procs[i].wait()})")
                    cpu, n = line.split()
                    best[i][s] = min(best[i].get(s, math.inf), float(cpu))
                    steps[i][s] = int(n)
    finally:
        for p in procs:
            p.stdin.close()
            p.wait()
    per_step = [1000 * sum(b.values()) / sum(n.values()) for b, n in zip(best, steps)]
    return {"trees": [{"tree": t, "steps": sum(n.values()), "ms_per_step": m, "ratio": m / per_step[0]}
                      for t, n, m in zip(trees, steps, per_step)],
            "rounds": rounds, "seeds": seeds}


def fixed_work(seeds: int = 10) -> dict:
    """CPU time of the same ``StreamMachine`` work every time: seeds ``0..seeds-1``, 5 examples
    each, 40 steps, generate phase only (as ``measure_machine`` runs it). The work is fixed and
    only its CPU cost is read, so a neighbour's load moves it far less than steps/s; compare
    two trees by alternating runs of this (BENCHMARKS.md, session 8)."""
    from hypothesis import seed as hseed

    from statemodel.machine import MachineOptions, machine_class

    counted = _counting(machine_class(MachineOptions()))
    config = _fixed_config()
    failures = 0
    start = time.process_time()
    for s in range(seeds):
        try:
            run_state_machine_as_test(hseed(s)(counted), settings=config)
        except Exception:  # noqa: BLE001 - counted: a false failure
            failures += 1
    cpu = time.process_time() - start
    steps = counted.checks - counted.examples
    return {"steps": steps, "examples": counted.examples, "failures": failures, "cpu_seconds": cpu,
            "ms_per_step": 1000 * cpu / steps, "steps_per_cpu_second": steps / cpu}


async def _raw_messages(count: int, chars: int) -> float:
    """CPU seconds for ``count`` messages of ``chars`` characters, server to client (unmasked,
    as the sim's data frames), over trio-websocket on a trio memory stream pair: the library
    alone, no protocol, no faults, no model."""
    import trio.testing
    from trio_websocket import wrap_client_stream, wrap_server_stream

    client_end, server_end = trio.testing.memory_stream_pair()
    payload = "x" * chars
    async with trio.open_nursery() as nursery:
        accepted: list = []
        ready = trio.Event()

        async def serve() -> None:
            request = await wrap_server_stream(nursery, server_end)
            accepted.append(await request.accept())
            ready.set()

        nursery.start_soon(serve)
        client = await wrap_client_stream(nursery, client_end, "bench", "/")
        await ready.wait()
        start = time.process_time()

        async def send() -> None:
            for _ in range(count):
                await accepted[0].send_message(payload)

        nursery.start_soon(send)
        for _ in range(count):
            await client.get_message()
        cpu = time.process_time() - start
        nursery.cancel_scope.cancel()
    return cpu


def library_floor(seeds: int = 3, messages: int = 2000, chars: int = 100) -> dict:
    """The most the sim's step rate could reach against the bare machine while it runs real
    trio-websocket, if everything else (Hypothesis' rule choice, the protocol, the model,
    connection set-up, faults) cost nothing: the bare machine's CPU per step over the CPU of
    the WebSocket messages one StreamMachine step sends (counted at trio-websocket's
    ``send_message`` over `fixed_work`), each priced at the library's cheapest: a small
    unmasked message on a memory stream (DESIGN.md §2: the sim runs the real library)."""
    import trio.testing
    import trio_websocket

    from hypothesis import seed as hseed

    counted = _counting(BareMachine)
    start = time.process_time()
    for s in range(10):
        run_state_machine_as_test(hseed(s)(counted), settings=_fixed_config())
    bare_ms = 1000 * (time.process_time() - start) / (counted.checks - counted.examples)

    sent = [0]
    real_send = trio_websocket.WebSocketConnection.send_message

    async def counting_send(self, message):
        sent[0] += 1
        return await real_send(self, message)

    # CPU inside the machines' trio loops (each runs in its own greenlet: statemodel.bridge)
    # is the world's; the rest is the tester's: Hypothesis, rule bodies, model, invariants.
    main, world, entered = greenlet.getcurrent(), [0.0], [None]

    def on_switch(event, args):
        if event in ("switch", "throw"):
            origin, target = args
            now = time.process_time()
            if origin is not main and entered[0] is not None:
                world[0] += now - entered[0]
            entered[0] = now if target is not main else None

    trio_websocket.WebSocketConnection.send_message = counting_send
    previous = greenlet.settrace(on_switch)
    try:
        work = fixed_work(seeds)
    finally:
        greenlet.settrace(previous)
        trio_websocket.WebSocketConnection.send_message = real_send
    per_step = sent[0] / work["steps"]
    world_ms = 1000 * world[0] / work["steps"]
    cpu = min(trio.run(_raw_messages, messages, chars, clock=trio.testing.MockClock(autojump_threshold=0))
              for _ in range(3))
    message_ms = 1000 * cpu / messages
    tester_ms = work["ms_per_step"] - world_ms
    return {"bare_ms_per_step": bare_ms, "messages_per_step": per_step, "message_ms": message_ms,
            "message_chars": chars, "library_ms_per_step": per_step * message_ms,
            "stream_ms_per_step": work["ms_per_step"], "world_ms_per_step": world_ms, "tester_ms_per_step": tester_ms,
            "ratio": bare_ms / work["ms_per_step"],
            # if the world cost only its trio-websocket messages / if the world were free
            "floor_ratio": bare_ms / (tester_ms + per_step * message_ms), "free_world_ratio": bare_ms / tester_ms}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "compare":
        r = compare_trees(args[1].split(","), int(args[2]) if len(args) > 2 else 5)
        for t in r["trees"]:
            print(f"{t['tree']}: {t['steps']} steps, {t['ms_per_step']:.3f} CPU ms/step (per-seed minimum of "
                  f"{r['rounds']}), ratio {t['ratio']:.3f}")
        return 0
    if args and args[0] == "floor":
        fixed_work(1)  # imports and first-use caches out of the figure
        r = library_floor(int(args[1]) if len(args) > 1 else 3)
        print(f"CPU ms a step: bare machine {r['bare_ms_per_step']:.3f}; StreamMachine {r['stream_ms_per_step']:.3f} "
              f"(ratio {r['ratio']:.3f}) = tester {r['tester_ms_per_step']:.3f} (Hypothesis, rules, model, "
              f"invariants) + world {r['world_ms_per_step']:.3f} (the trio loop)")
        print(f"the world sends {r['messages_per_step']:.2f} WebSocket messages a step, each >= {r['message_ms']:.3f} ms "
              f"in trio-websocket alone ({r['message_chars']} chars on a memory stream): "
              f"{r['library_ms_per_step']:.3f} ms")
        print(f"ratio if the world cost only those messages: {r['floor_ratio']:.3f}; if it were free: "
              f"{r['free_world_ratio']:.3f}")
        return 0
    if args and args[0] == "fixed":
        fixed_work(1)  # imports and first-use caches out of the figure
        r = fixed_work(int(args[1]) if len(args) > 1 else 10)
        print(f"fixed work: {r['steps']} steps, {r['examples']} examples, {r['failures']} failures, "
              f"{r['ms_per_step']:.3f} CPU ms/step ({r['steps_per_cpu_second']:.0f} steps per CPU second)")
        return 0
    result = measure(float(args[0]) if args else 3.0)
    print(
        f"bare {result['bare_steps_per_s']:.0f} steps/s, bridged {result['bridged_steps_per_s']:.0f} steps/s, "
        f"ratio {result['ratio']:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
