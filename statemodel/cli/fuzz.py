"""`statemodel fuzz`: run the state machine under Hypothesis, report and keep failures."""

from __future__ import annotations

import argparse
import os
import secrets
import sys

HELP = "Fuzz the resumable stream with the state machine; exit 1 when a failure is found."

TRANSPORTS = ("sim", "tcp", "netns")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from statemodel.profiles import PROFILES

    parser.add_argument("--target", default="reference",
                        help="what to test: 'reference' (default), a ws://… URL, or package.module:factory")
    parser.add_argument("--transport", choices=TRANSPORTS, default="sim",
                        help="network backend: sim (in-memory, virtual time; default), tcp (loopback "
                             "fault proxy) or netns (Linux namespaces, root)")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--examples", type=_positive_int, metavar="N",
                        help="examples to run in total (default: the profile's max_examples)")
    amount.add_argument("--duration", type=_positive_float, metavar="SECONDS",
                        help="keep fuzzing in batches with fresh seeds until this much wall time has passed")
    parser.add_argument("--seed", type=_seed, default=None,
                        help="base seed; worker i uses seed+i (default: random, printed so the run can be repeated)")
    parser.add_argument("--mutant", action="append", default=[], metavar="NAME",
                        help="switch on a reference-implementation bug (repeatable; see `statemodel mutants`)")
    parser.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                        help="worker processes sharing one example database (default 1)")
    parser.add_argument("--db", metavar="PATH|redis://HOST:PORT/DB",
                        help="example database shared by workers and machines: a directory or a Redis URL "
                             "(optional ?prefix=NAME); default: none")
    parser.add_argument("--report", metavar="DIR",
                        help="write summary.json, junit.xml and a reproducer folder per failure here")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="dev",
                        help="Hypothesis settings profile (default dev); flags above override it")
    parser.add_argument("--progress-interval", type=_positive_float, default=5.0,
                        help=argparse.SUPPRESS)
    parser.add_argument("--machine", default=None, help=argparse.SUPPRESS)  # module:callable


def config_from_args(args: argparse.Namespace):
    from statemodel.fuzz import FuzzConfig

    mutants = []
    for item in args.mutant:
        mutants.extend(m.strip() for m in item.split(",") if m.strip())
    return FuzzConfig(
        target=args.target, transport=args.transport, mutants=tuple(sorted(set(mutants))),
        examples=args.examples, duration=args.duration,
        seed=args.seed if args.seed is not None else secrets.randbelow(2**32),
        workers=args.workers, db=args.db, profile=args.profile, machine=args.machine,
    )


def preflight(config) -> None:
    """Fail fast (exit 2) on a machine or database that cannot work, before any worker starts."""
    from statemodel.fuzz import load_machine, open_database
    from statemodel.fuzz.machine import MachineUnavailable, build_options

    loaded = load_machine(config.machine)
    options = build_options(loaded, config.target, config.transport, config.mutants)
    try:
        loaded.machine_class(options)
    except (TypeError, ValueError, KeyError) as exc:
        raise MachineUnavailable(f"the machine rejected these options: {exc}") from exc
    open_database(config.db, "preflight")


def run(args: argparse.Namespace) -> int:
    from statemodel import report
    from statemodel.fuzz import DatabaseError, MachineUnavailable
    from statemodel.fuzz import run as fuzz_run
    from statemodel.fuzz.progress import Progress
    from statemodel.target.preflight import TargetUnavailable, preflight as preflight_target

    config = config_from_args(args)
    try:
        preflight(config)
        if config.machine is None and not os.environ.get("STATEMODEL_MACHINE"):
            # A bad --target/--transport pair is a usage error, not a failure of example 1.
            from statemodel.machine import MachineOptions
            from statemodel.target import check_target

            options = MachineOptions(target=config.target, transport=config.transport,
                                     mutants=frozenset(config.mutants))
            check_target(options)
            preflight_target(options)  # unreachable or foreign servers: exit 2 before any example
    except (MachineUnavailable, DatabaseError, ValueError, TargetUnavailable) as exc:
        print(f"statemodel fuzz: error: {exc}", file=sys.stderr)
        return 2
    print(f"statemodel fuzz: seed {config.seed}, {config.workers} worker(s), profile {config.profile}, "
          f"target {config.target} over {config.transport}"
          + (f", mutants {', '.join(config.mutants)}" if config.mutants else ""), file=sys.stderr)
    with Progress(config.workers, interval=args.progress_interval,
                  clock="virtual" if config.transport == "sim" else "real") as progress:
        result = fuzz_run(config, progress)
    if args.report:
        try:
            out = report.write(result, args.report)
        except OSError as exc:
            print(f"statemodel fuzz: error: cannot write the report to {args.report}: {exc}", file=sys.stderr)
            return 2
    rates = result.rates
    print(f"examples {result.examples}, steps {result.steps}, failures {len(result.failures)}, "
          f"trace_digest {result.trace_digest}")
    print(f"rate {rates['examples_per_s']:.2f} examples/s, {rates['steps_per_s']:.1f} steps/s "
          f"({result.elapsed:.0f} s wall)")
    for n, failure in enumerate(result.failures, start=1):
        print(f"\nFAILURE {n}: {failure.title}\n  {failure.error_type}: {failure.message}")
        if failure.reproduced is False:
            print("  warning: re-running the shrunk program did not fail the same way (flaky?)")
        if args.report:
            print(f"  reproducer: {out / f'failure-{n}' / 'repro_test.py'}")
        if failure.program:
            print("  " + failure.program.replace("\n", "\n  "))
    for w in result.workers:
        if w.note:
            print(f"statemodel fuzz: worker {w.worker}: {w.note}", file=sys.stderr)
    for err in result.errors:
        print(f"statemodel fuzz: error: {err}", file=sys.stderr)
    if result.interrupted:
        print("statemodel fuzz: interrupted; results above are partial", file=sys.stderr)
    return result.exit_code
