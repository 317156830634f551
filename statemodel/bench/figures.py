"""One benchmark run: every DESIGN.md §7 figure beside its anchor, with target and verdict.

A figure is a plain dict (so ``--json`` is one object that can be tracked over time):
``name, what, value, unit, anchor, anchor_what, ratio, target, met``. ``target`` reads as
``<subject> <op> <bound>`` where subject is ``value`` or ``ratio``.
"""

from __future__ import annotations

import operator
import os
import platform
import sys
import time
from importlib import metadata
from typing import Any, Callable

OPS: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, ">=": operator.ge}

# (quick, full) budgets; quick is a smoke run: tiny, and nothing about it is asserted.
BUDGETS = {
    "steprate_seconds": (1.5, 15.0),
    "mutant_bound_seconds": (5.0, 30.0),  # the target: each mutant caught and shrunk in < 30 s
    "mutant_names": (("no_dedupe", "inflight_per_connection"), None),  # None = all
    "memory_clients": (10, 100),
    "fuzz_examples": (10, 600),  # a fuzz worker's RSS: past one Hypothesis batch (runner.MAX_BATCH)
    "realnet": ((("tcp",), 2.0, 1), (("ws", "tcp", "netns"), 40.0, 5)),  # transports, seconds each, examples a run
    # transports, workers, examples per worker: 3 a worker was a 2-7 s run, its first small
    # examples and start-up (one worker "47.7 steps/s" on tcp where 30 examples run at ~31)
    "fuzz_workers": ((("tcp",), 2, 1), (("ws", "tcp", "netns"), 4, 10)),
}
# Real-socket step rates (issue 14): the figure is steps/s, its anchor the sim's in the same run.
REALNET = {"ws": "--target ws:// (statemodel serve --app script, own process)",
           "tcp": "reference target, --transport tcp", "netns": "reference target, --transport netns"}


def figure(name: str, what: str, value: float | None, unit: str, target: tuple[str, str, float],
           anchor: float | None = None, anchor_what: str | None = None, **extra: Any) -> dict[str, Any]:
    subject, op, bound = target
    ratio = value / anchor if value is not None and anchor else None
    checked = ratio if subject == "ratio" else value
    return {
        "name": name, "what": what, "value": value, "unit": unit,
        "anchor": anchor, "anchor_what": anchor_what, "ratio": ratio,
        "target": f"{subject} {op} {bound:g}",
        "met": None if checked is None else OPS[op](checked, bound),
        **extra,
    }


def host() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    versions = {}
    for pkg in ("trio", "trio-websocket", "wsproto", "hypothesis", "greenlet"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": sys.version.split()[0],
            "platform": platform.platform(), "packages": versions}


def run(quick: bool, progress: Callable[[str], None] = lambda _msg: None, seed: int = 0) -> dict[str, Any]:
    """Measure everything (full run: about 15 minutes on 2 cores; quick: well under a minute)."""
    from statemodel.bench import fuzzmem, loopback, memory, mutants, realrate, steprate
    from statemodel.net.netns import unavailable_reason
    from statemodel.stream.mutants import MUTANTS

    pick = 0 if quick else 1
    started = time.perf_counter()
    figures: list[dict[str, Any]] = []
    details: dict[str, Any] = {}

    def section(key: str, measure: Callable[[], Any], build: Callable[[Any], list[dict[str, Any]]],
                names: tuple[str, ...], targets: tuple[tuple[str, str, float], ...]) -> None:
        """One measurement; if it fails, its figures say why (value None, met False) and the
        rest of the run goes on."""
        try:
            data = measure()
        except Exception as exc:  # noqa: BLE001 - reported in the figure, the run continues
            details[key] = {"error": f"{type(exc).__name__}: {exc}"}
            figures.extend(figure(n, "measurement failed", None, "-", t, error=details[key]["error"]) | {"met": False}
                           for n, t in zip(names, targets))
            return
        details[key] = data
        figures.extend(build(data))

    progress("step rate: StreamMachine vs a bare Hypothesis machine")
    section("steprate", lambda: steprate.measure_machine(BUDGETS["steprate_seconds"][pick], seed=seed),
            lambda sr: [figure(
                "sim_step_rate", "sim steps/s of StreamMachine (reference target)", sr["stream"]["steps_per_s"],
                "steps/s", ("ratio", ">=", 0.15), sr["bare"]["steps_per_s"], "bare Hypothesis machine, trivial rules",
                false_failures=sr["stream"]["failures"])],
            ("sim_step_rate",), (("ratio", ">=", 0.15),))

    progress("loopback: reconnect + resume, 2 MiB throughput, fault proxy overhead")
    raw = "raw trio-websocket connect+close p50, alternating with the cuts after the same idle pause"
    lb_targets = (("ratio", "<=", 3.0), ("value", "<=", 0.010), ("ratio", ">=", 0.7), ("value", "<=", 150e-6),
                  ("ratio", ">=", 0.6))
    section("loopback", lambda: loopback.run_all(quick), lambda lb: [
        figure("resume_p50", "abrupt cut -> Resumed(recovered), p50", lb["reconnect"]["resume_p50_s"], "s",
               lb_targets[0], lb["reconnect"]["raw_connect_close_p50_s"], raw),
        figure("resume_p99", "abrupt cut -> Resumed(recovered), p99", lb["reconnect"]["resume_p99_s"], "s",
               lb_targets[1], lb["reconnect"]["raw_connect_close_p50_s"], raw),
        figure("throughput_2mib", "2 MiB response through the protocol", lb["throughput"]["protocol_bytes_per_s"],
               "B/s", lb_targets[2], lb["throughput"]["raw_bytes_per_s"], "raw trio-websocket, same loopback"),
        figure("proxy_added_rtt_p50", "round trip added by the fault proxy (no faults), p50",
               lb["proxy"]["added_rtt_p50_s"], "s", lb_targets[3], lb["proxy"]["direct_rtt_p50_s"],
               "direct round trip p50"),
        figure("proxy_throughput", "echo throughput through the fault proxy (no faults)",
               lb["proxy"]["proxy_bytes_per_s"], "B/s", lb_targets[4], lb["proxy"]["direct_bytes_per_s"],
               "direct, same loopback"),
    ], ("resume_p50", "resume_p99", "throughput_2mib", "proxy_added_rtt_p50", "proxy_throughput"), lb_targets)

    transports, real_s, real_examples = BUDGETS["realnet"][pick]
    progress(f"real sockets: {', '.join(transports)} step rates beside the sim ({real_s:g} s each)")
    section("realnet", lambda: realrate.measure(real_s, seed=seed, transports=transports, examples=real_examples),
            lambda rr: [figure(
                f"{name}_step_rate", f"steps/s over real sockets: {REALNET[name]}", rr[name]["real"]["steps_per_s"],
                "steps/s", ("value", ">=", 40.0), rr[name]["sim"]["steps_per_s"], "sim steps/s of StreamMachine, same run",
                examples_per_s=rr[name]["real"]["examples_per_s"], false_failures=rr[name]["real"]["failures"])
                for name in transports if name in rr],
            tuple(f"{name}_step_rate" for name in transports), (("value", ">=", 40.0),) * len(transports))

    fuzz_transports, workers, per_worker = BUDGETS["fuzz_workers"][pick]
    for name in fuzz_transports:
        if name == "netns" and unavailable_reason() is not None:
            continue  # not root, or no `ip netns`: realnet lists it as skipped
        progress(f"real sockets: statemodel fuzz on {name}, {workers} workers beside one")
        section(f"fuzz_{name}", lambda name=name: realrate.fuzz_rate(name, workers, per_worker, seed=seed),
                lambda fr, name=name: [figure(
                    f"{name}_fuzz_rate", f"steps/s of statemodel fuzz --workers {workers}: {REALNET[name]}",
                    fr["many"]["steps_per_s"], "steps/s", ("value", ">=", 40.0), fr["single"]["steps_per_s"],
                    "the same with --workers 1, same run", false_failures=fr["many"]["failures"] + fr["single"]["failures"])],
                (f"{name}_fuzz_rate",), (("value", ">=", 40.0),))

    clients = BUDGETS["memory_clients"][pick]
    progress(f"memory: server process, {clients} concurrent 2 MiB responses under drops")
    section("memory", lambda: memory.measure(clients=clients), lambda mem: [figure(
        "server_peak_rss", f"server process peak RSS, {clients} x 2 MiB under drops", mem["server_peak_mib"], "MiB",
        ("value", "<=", 50.0), mem["bare_interpreter_mib"], "bare interpreter with trio + trio-websocket")],
        ("server_peak_rss",), (("value", "<=", 50.0),))

    examples = BUDGETS["fuzz_examples"][pick]
    progress(f"memory: one fuzz worker, {examples} examples")
    section("fuzzmem", lambda: fuzzmem.measure(examples, seed=seed), lambda fm: [figure(
        "fuzz_worker_rss", f"fuzz worker RSS, plateau over {fm['examples']} examples (peak: details)",
        fm["plateau_mib"], "MiB", ("value", "<=", 250.0), fm["anchor_mib"],
        "a process that imported the machine and Hypothesis", peak_mib=fm["peak_mib"])],
        ("fuzz_worker_rss",), (("value", "<=", 250.0),))

    names = list(BUDGETS["mutant_names"][pick] or MUTANTS)
    bound = BUDGETS["mutant_bound_seconds"][pick]
    progress(f"mutants: hunting {len(names)} (bound {bound:g} s each, one at a time)")
    m_targets = (("value", ">=", 1.0), ("value", "<=", 30.0), ("value", "<=", 3.0), ("value", "<=", 10.0))
    section("mutants", lambda: mutants.summarise(mutants.hunt_all(names, bound, seed=seed, parallel=1)), lambda h: [
        figure("mutants_caught", "mutants caught within the bound", h["caught_fraction"], "fraction", m_targets[0]),
        figure("mutant_max_seconds", "slowest catch + shrink (killed at the bound)", h["max_seconds"], "s",
               m_targets[1]),
        figure("mutant_median_seconds", "median catch + shrink", h["median_seconds"], "s", m_targets[2]),
        figure("mutant_max_shrunk_steps", "longest shrunk program (steps)", h["max_shrunk_steps"], "steps",
               m_targets[3]),
    ], ("mutants_caught", "mutant_max_seconds", "mutant_median_seconds", "mutant_max_shrunk_steps"), m_targets)
    return {
        "quick": quick, "seed": seed, "host": host(),
        "seconds": time.perf_counter() - started,
        "figures": figures, "details": details,
    }
