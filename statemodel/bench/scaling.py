"""How the sim's cost grows with the work (BENCHMARKS.md, scaling table).

Each cell runs one fixed program against the reference target in its own process, so its
peak RSS is its own: boot, connect until there are ``sessions`` sessions, open ``streams``
streams in each, then ``rounds`` rounds in which every stream asks for one more message of
``size`` bytes and the world runs ``ROUND_SECONDS``, then ``settle`` (everything delivered,
checked by the model) and teardown. Each message is a ``bytes`` chunk of the scripted app.
Steps are rule calls, as in the step-rate figure; rates are per CPU second of the process
(what a busy host changes least), and the anchor is the bare Hypothesis machine measured the
same way in the same process right before, so a cell reads as a ratio too.

``python -m statemodel.bench.scaling`` prints the table as JSON lines (one cell a line);
``python -m statemodel.bench.scaling CELL`` runs one cell (``sessions,streams,size``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

SESSIONS = (1, 3, 10)
STREAMS = (1, 4, 16)
SIZES = (1024, 2 * 1024 * 1024)
ROUNDS = 5
ROUND_SECONDS = 1.0  # virtual: enough for every 2 MiB message of a round to arrive


def program(machine_cls: type, sessions: int, streams: int, size: int, rounds: int = ROUNDS) -> int:
    """Run the cell's program; returns how many rules (steps) it called."""
    spec = {"kind": "bytes", "seed": 0, "size": size}
    state = machine_cls()
    steps = 0
    try:
        handles = [state.boot(seed=0, chunks=[spec], context=None)]
        steps += 1
        for _ in range(sessions - 1):
            state.connect()
            steps += 1
        for s in range(sessions):
            for t in range(streams):
                if s or t:
                    handles.append(state.open_stream(session=s, chunks=[spec]))
                    steps += 1
        for r in range(rounds):
            for h in handles:
                state.emit(stream=h, chunks=[dict(spec, seed=r + 1)])
                steps += 1
            state.advance(seconds=ROUND_SECONDS)
            steps += 1
        state.settle()
        steps += 1
        state.invariants_hold()
    finally:
        state.teardown()
    return steps


def run_cell(sessions: int, streams: int, size: int) -> dict[str, Any]:
    """One cell, in this process (call it in a fresh process: the peak RSS is the process's)."""
    from statemodel.bench import steprate
    from statemodel.bench.server_proc import peak_rss_kib
    from statemodel.machine import MachineOptions, machine_class

    base = machine_class(MachineOptions())
    cls = type(base.__name__, (base,), {"max_streams_per_session": max(streams, base.max_streams_per_session),
                                        "__module__": base.__module__})
    steprate._machine_rate(steprate.BareMachine, 0.3, 20, 0)  # warm-up: Hypothesis' first run
    cpu = time.process_time()
    bare = steprate._machine_rate(steprate.BareMachine, 1.5, 20, 1)
    bare_rate = bare["steps"] / (time.process_time() - cpu)
    start_rss = peak_rss_kib() / 1024
    wall, cpu = time.perf_counter(), time.process_time()
    steps = program(cls, sessions, streams, size)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rate = steps / cpu
    return {
        "sessions": sessions, "streams_per_session": streams, "message_bytes": size,
        "steps": steps, "wall_seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
        "steps_per_cpu_s": round(rate, 1), "bare_steps_per_cpu_s": round(bare_rate, 1),
        "ratio": round(rate / bare_rate, 4),
        "peak_rss_mib": round(peak_rss_kib() / 1024, 1), "rss_before_mib": round(start_rss, 1),
    }


GRID = [(a, b, c) for a in SESSIONS for b in STREAMS for c in SIZES]


def cell_in_process(sessions: int, streams: int, size: int, timeout: float = 900.0) -> dict[str, Any]:
    """One cell in a fresh interpreter (its RSS is the cell's alone)."""
    cell = {"sessions": sessions, "streams_per_session": streams, "message_bytes": size}
    try:
        proc = subprocess.run([sys.executable, "-m", "statemodel.bench.scaling", f"{sessions},{streams},{size}"],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return cell | {"error": f"no result within {timeout:g} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        return cell | {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
    return json.loads(lines[-1])


def table(cells=GRID) -> list[dict[str, Any]]:
    return [cell_in_process(*cell) for cell in cells]


def main(argv: list[str]) -> int:
    if argv:
        sessions, streams, size = (int(x) for x in argv[0].split(","))
        print(json.dumps(run_cell(sessions, streams, size)), flush=True)
        return 0
    for cell in GRID:
        print(json.dumps(cell_in_process(*cell)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
