"""`statemodel mutants`: run the machine against every mutant and show what it caught."""

from __future__ import annotations

import argparse
import json
import sys

from statemodel.cli.args import mutant, positive_float, seed

HELP = "Hunt each switchable bug of the reference server; exit 1 if any escapes the machine."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", type=mutant, metavar="NAME", help="Mutants to hunt (default: all)")
    parser.add_argument("--budget", type=positive_float, default=30.0, metavar="SECONDS",
                        help="Wall-clock seconds per mutant before it counts as escaped (default 30)")
    parser.add_argument("--seed", type=seed, default=0, help="Base seed (default 0)")
    parser.add_argument("--json", action="store_true", help="Print one JSON object per mutant instead of a table")
    parser.add_argument("--list", action="store_true", help="List the mutants and the bug class each models")


def escaped_hint(result, budget: float, seed_value: int) -> str:
    """Which mutant escaped, after how much work, and the two ways to hunt it longer."""
    longer = max(budget * 10, 300)
    return (f"mutant {result.name} escaped: no failure in {result.seconds:.0f} s ({result.examples} examples, "
            f"budget {budget:g} s). Hunt it longer with `statemodel mutants {result.name} --budget {longer:g}` "
            f"or `statemodel fuzz --mutant {result.name} --duration {longer:g} --seed {seed_value} --report out`")


def run(args: argparse.Namespace) -> int:
    from statemodel.cli.args import flatten
    from statemodel.stream.mutants import MUTANTS

    names = flatten(args.names)
    if args.list:
        for name in sorted(MUTANTS):
            bug, precedent = MUTANTS[name]
            print(f"{name}\n    bug: {bug}\n    seen in: {precedent}")
        return 0

    from rich.console import Console
    from rich.table import Table

    from statemodel.mutants import hunt_all

    console = Console(stderr=args.json)

    def show(r) -> None:
        if args.json:
            print(json.dumps(r.to_json()), flush=True)
        else:
            mark = "[green]caught[/]" if r.caught else "[red]ESCAPED[/]"
            console.print(f"{r.name:<28} {mark} in {r.seconds:6.1f}s, {r.examples} examples, "
                          f"{r.shrunk_steps if r.shrunk_steps is not None else '-'} steps")

    results = hunt_all(names or None, args.budget, args.seed, on_result=show)
    if not args.json:
        table = Table(title=f"mutants (budget {args.budget:g}s each, seed {args.seed})")
        for col in ("mutant", "caught", "seconds", "examples", "shrunk steps", "invariant"):
            table.add_column(col)
        for r in results:
            table.add_row(r.name, "yes" if r.caught else "[red]no[/]", f"{r.seconds:.1f}", str(r.examples),
                          "-" if r.shrunk_steps is None else str(r.shrunk_steps), (r.invariant or "-")[:70])
        console.print(table)
        caught = sum(r.caught for r in results)
        times = sorted(r.seconds for r in results if r.caught)
        median = times[len(times) // 2] if times else float("nan")
        console.print(f"caught {caught}/{len(results)}; median time to catch {median:.1f}s")
    for r in results:
        if not r.caught:
            print(f"statemodel mutants: {escaped_hint(r, args.budget, args.seed)}", file=sys.stderr)
    return 0 if all(r.caught for r in results) else 1
