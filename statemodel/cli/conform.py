"""`statemodel conform`: run the conformance corpus against a server; `conform add` keeps a failure."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HELP = ("Run the conformance corpus (PROTOCOL.md behaviours, one case each) against ws://HOST:PORT/ "
        "or the reference server; `conform add FAILURE_DIR --name N --section S` keeps a fuzz failure as a case.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="?", metavar="TARGET",
                        help="A ws://HOST:PORT/PATH of a server with the scripted app, or 'reference' (the "
                             "embedded reference server on the sim network); 'add' keeps a failure as a case")
    parser.add_argument("folder", nargs="?", metavar="FAILURE_DIR", help=argparse.SUPPRESS)
    parser.add_argument("--report", metavar="DIR", help="Write conform.json and conform.html here (default: no report)")
    parser.add_argument("--case", action="append", default=[], metavar="NAME", help="Run only these cases (repeatable; default: all)")
    parser.add_argument("--list", action="store_true", help="List the cases (name, section, what each checks)")
    parser.add_argument("--mutant", action="append", default=[], metavar="NAME",
                        help="With target 'reference': switch on a reference-implementation bug (repeatable)")
    parser.add_argument("--cases-dir", metavar="DIR", help=argparse.SUPPRESS)
    # `conform add FAILURE_DIR --name NAME --section N [--title TEXT]`
    parser.add_argument("--name", help="For add: the new case's name (lowercase, digits, '_')")
    parser.add_argument("--section", help="For add: the PROTOCOL.md section it checks (e.g. 7.3)")
    parser.add_argument("--title", help="For add: the behaviour it checks, in the spec's words")


def run(args: argparse.Namespace) -> int:
    from statemodel.conform import CASES_DIR, CaseError, case_from_failure, load_cases, write_case

    directory = Path(args.cases_dir) if args.cases_dir else CASES_DIR
    if args.target == "add":
        if not args.folder or not args.name or not args.section:
            print("usage: statemodel conform add FAILURE_DIR --name NAME --section N [--title TEXT]", file=sys.stderr)
            return 2
        try:
            path = write_case(case_from_failure(Path(args.folder), args.name, args.section, args.title), directory)
        except CaseError as exc:
            print(f"statemodel conform add: error: {exc}", file=sys.stderr)
            return 2
        print(f"added {path}")
        return 0
    try:
        cases = load_cases(directory, args.case or None)
    except CaseError as exc:
        print(f"statemodel conform: error: {exc}", file=sys.stderr)
        return 2
    if args.list:
        for c in cases:
            print(f"§{c.section:<4} {c.name:<48} {c.title}")
        return 0
    if not args.target or args.folder:
        print("usage: statemodel conform ws://HOST:PORT/ [--report DIR]  |  statemodel conform reference", file=sys.stderr)
        return 2
    error = _check_target(args.target, args.mutant)
    if error:
        print(f"statemodel conform: error: {error}", file=sys.stderr)
        return 2
    from statemodel.conform import report as report_mod
    from statemodel.conform.runner import run_corpus

    mutants = frozenset(args.mutant)
    print(f"statemodel conform: {len(cases)} cases against {args.target}"
          + (f" (mutants {', '.join(sorted(mutants))})" if mutants else ""), file=sys.stderr)
    started = time.monotonic()

    def show(r) -> None:
        message = f"  {r.message.splitlines()[0][:400]}" if r.message and r.verdict != "pass" else ""
        print(f"{r.verdict.upper():<5} §{r.case.section:<4} {r.case.name:<48} {r.seconds:5.2f}s{message}", flush=True)

    results = run_corpus(cases, args.target, mutants, on_result=show)
    seconds = time.monotonic() - started
    s = report_mod.summary(results)
    print(f"{s['pass']} passed, {s['fail']} failed, {s['skip']} skipped, {s['error']} errors in {seconds:.1f}s")
    if args.report:
        try:
            out = report_mod.write(results, args.report, args.target, mutants, seconds)
        except OSError as exc:
            print(f"statemodel conform: error: cannot write the report to {args.report}: {exc}", file=sys.stderr)
            return 2
        print(f"report: {out / 'conform.html'}")
    return 1 if s["fail"] or s["error"] else 0


def _check_target(target: str, mutants: list[str]) -> str | None:
    """A usage problem, or an unreachable target, as one line (exit 2) before any case runs."""
    from statemodel.stream.mutants import MUTANTS

    unknown = [m for m in mutants if m not in MUTANTS]
    if unknown:
        return f"unknown mutant(s) {', '.join(unknown)}; `statemodel mutants --list` lists them"
    if target == "reference":
        return None
    if mutants:
        return "--mutant switches bugs on in the embedded reference server only (use `statemodel serve --mutant` for a URL)"
    from statemodel.target.external import is_ws_url

    if not is_ws_url(target):
        return f"target {target!r}: give a ws://HOST:PORT/PATH URL or 'reference'"
    from statemodel.machine import MachineOptions
    from statemodel.target import check_target

    options = MachineOptions(target=target, transport="tcp")
    try:
        check_target(options)
    except ValueError as exc:
        return str(exc)
    try:
        from statemodel.target.preflight import preflight
    except ImportError:  # no preflight in this tree: the first case will say what failed
        return None
    try:
        preflight(options)
    except Exception as exc:  # noqa: BLE001 - the preflight's one-line verdict
        return str(exc)
    return None
