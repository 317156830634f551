"""`statemodel bench`: every DESIGN.md §7 figure beside its anchor, measured in one run."""

from __future__ import annotations

import argparse
import json
import sys

from statemodel.cli.args import error, seed

HELP = "Measure statemodel against its anchors (step rate, mutants, resume, throughput, proxy, memory)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="Print one JSON object (figures, anchors, ratios, targets, host) instead of a table")
    parser.add_argument("--quick", action="store_true",
                        help="Tiny budgets (< 30 s): a smoke run; its numbers say nothing about speed")
    parser.add_argument("--seed", type=seed, default=0, help="Seed for the machines and mutant hunts (default 0)")


def _fmt(value, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s" and abs(value) >= 1:
        return f"{value:.3g} s"
    if unit == "s":
        return f"{value * 1e3:.3g} ms" if value >= 1e-3 or value <= -1e-3 else f"{value * 1e6:.3g} µs"
    if unit == "B/s":
        return f"{value / 2**20:.0f} MiB/s"
    if unit == "fraction":
        return f"{value:.0%}"
    return f"{value:.4g} {unit}"


def _target(f: dict) -> str:
    subject, op, bound = f["target"].split()
    return f"{subject} {op} {bound}" if subject == "ratio" else f"{op} {_fmt(float(bound), f['unit'])}"


def render(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(100, Console().width))
    h = result["host"]
    table = Table(title=f"statemodel bench{' --quick (smoke: not a measurement)' if result['quick'] else ''}")
    for col in ("figure", "value", "anchor", "ratio", "target", "met"):
        table.add_column(col, justify="right" if col in ("value", "anchor", "ratio") else "left", no_wrap=True)
    for f in result["figures"]:
        met = {True: "[green]yes[/]", False: "[red]no[/]", None: "-"}[f["met"]]
        anchor = _fmt(f["anchor"], "MiB" if f["unit"] == "MiB" else f["unit"]) if f["anchor"] is not None else "-"
        table.add_row(f["name"], _fmt(f["value"], f["unit"]), anchor,
                      f"{f['ratio']:.3g}" if f["ratio"] is not None else "-", _target(f), met)
    console.print(table)
    console.print(f"{h['nproc']} x {h['cpu']}, Python {h['python']}, "
                  + ", ".join(f"{k} {v}" for k, v in h["packages"].items())
                  + f"; took {result['seconds']:.0f} s")


def run(args: argparse.Namespace) -> int:
    from statemodel.bench.figures import run as run_bench

    def progress(msg: str) -> None:
        if not args.json:
            print(f"… {msg}", file=sys.stderr, flush=True)

    try:
        result = run_bench(args.quick, progress, seed=args.seed)
    except (OSError, RuntimeError) as exc:
        return error("bench", str(exc))
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        render(result)
    return 0
