"""`statemodel fuzz`: run the state machine under Hypothesis, report and keep failures."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys

from statemodel.cli.args import error, flatten, mutant_names, nonempty, positive_float, positive_int, seconds, seed

HELP = "Fuzz the resumable stream with the state machine; exit 1 when a failure is found."

TRANSPORTS = ("sim", "tcp", "netns")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from statemodel.profiles import PROFILES

    parser.add_argument("--target", default="reference",
                        help="What to test: 'reference' (the embedded reference server; default), "
                             "a ws://… URL, or package.module:factory")
    parser.add_argument("--transport", choices=TRANSPORTS, default="sim",
                        help="Network backend: sim (in-memory, virtual time; default), tcp (loopback "
                             "fault proxy) or netns (Linux namespaces, root)")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--examples", type=positive_int, metavar="N",
                        help="Examples to generate in total (default: the profile's max_examples)")
    amount.add_argument("--duration", type=positive_float, metavar="SECONDS",
                        help="Keep fuzzing in batches with fresh seeds until this much wall time has passed")
    parser.add_argument("--shrink-budget", type=seconds, default=60.0, metavar="SECONDS",
                        help="Wall seconds to spend shrinking a failure before reporting the smallest "
                             "program found so far (default 60; 0: report it unshrunk; Hypothesis "
                             "itself stops at 300)")
    parser.add_argument("--seed", type=seed, default=None,
                        help="Base seed; worker i uses seed+i (default: random, printed so the run can be repeated)")
    parser.add_argument("--mutant", type=mutant_names, action="append", default=[], metavar="NAME",
                        help="Switch on a reference-implementation bug (repeatable or comma-separated; "
                             "see `statemodel mutants --list`)")
    parser.add_argument("--workers", type=positive_int, default=1, metavar="N",
                        help="Worker processes sharing one example database (default 1)")
    parser.add_argument("--db", type=nonempty, metavar="PATH|redis://HOST:PORT/DB",
                        help="Example database shared by workers and machines: a directory or a Redis URL "
                             "(optional ?prefix=NAME); default: none")
    parser.add_argument("--report", type=nonempty, metavar="DIR",
                        help="Write summary.json, junit.xml and a reproducer folder per root cause here")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="dev",
                        help="Hypothesis settings profile (default dev); flags above override it")
    parser.add_argument("--progress-interval", type=positive_float, default=5.0,
                        help=argparse.SUPPRESS)
    parser.add_argument("--machine", default=None, help=argparse.SUPPRESS)  # module:callable


#: Printed under the banner when ``--workers N`` marked the URL ``#shared=1`` (FuzzConfig).
SHARED_NOTE = ("  #shared=1 added: the workers share the server, so a reset its shedding explains "
               "(a 1013, or a long enough outage: PROTOCOL.md §6) is not a failure; "
               "#shared=0 turns this off (docs/TARGETS.md)")


def config_from_args(args: argparse.Namespace):
    from statemodel.fuzz import FuzzConfig

    workers = args.workers
    if args.examples is not None and workers > args.examples:
        # every worker runs one example at least: `--workers 3 --examples 1` ran 3
        print(f"statemodel fuzz: note: {args.examples} example(s) need no more than {args.examples} "
              f"worker(s), not {workers}", file=sys.stderr)
        workers = args.examples
    return FuzzConfig(
        target=args.target, transport=args.transport, mutants=tuple(flatten(args.mutant)),
        examples=args.examples, duration=args.duration,
        seed=args.seed if args.seed is not None else secrets.randbelow(2**32),
        workers=workers, db=args.db, profile=args.profile, machine=args.machine,
        shrink_budget=args.shrink_budget,
    )


def preflight(config) -> None:
    """Fail fast (exit 2) on a machine, target or database that cannot work, before any worker starts."""
    from hypothesis import Phase, settings

    import statemodel.profiles  # noqa: F401  (registers the profiles)
    from statemodel.fuzz import load_machine, open_database
    from statemodel.fuzz.machine import MachineUnavailable, build_options
    from statemodel.target.preflight import preflight as preflight_target

    if config.db is None and Phase.generate not in settings.get_profile(config.profile).phases:
        raise ValueError(f"--profile {config.profile} generates nothing: it re-runs what --db holds, "
                         f"so it needs --db PATH|redis://… (the database an earlier run saved to)")
    loaded = load_machine(config.machine)
    options = build_options(loaded, config.target, config.transport, config.mutants)
    try:
        loaded.machine_class(options)
    except (TypeError, ValueError, KeyError) as exc:
        raise MachineUnavailable(f"the machine rejected these options: {exc}") from exc
    open_database(config.db, "preflight")
    if config.machine is None and not os.environ.get("STATEMODEL_MACHINE"):
        # A bad --target/--transport pair is a usage error, not a failure of example 1.
        from statemodel.target import check_target

        try:
            check_target(options)
        except (TypeError, ImportError) as exc:  # e.g. a factory spec naming a string: a traceback, exit 1
            raise ValueError(str(exc)) from exc
        preflight_target(options)  # unreachable or foreign servers: exit 2 before any example


def _value(v) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def print_failures(result, report_dir) -> None:
    """One block per root cause: the same structured record for every failure."""
    causes = result.causes
    for n, group in enumerate(causes, start=1):
        failure = group[0]
        inv = failure.invariant or {}
        print(f"\nFAILURE {n}: {failure.title}")
        print(f"  expected: {_value(inv.get('expected'))}\n  actual:   {_value(inv.get('actual'))}")
        if inv.get("step") is not None:
            print(f"  after step {inv['step']} of the program below")
        if len(group) > 1:
            print(f"  same root cause found {len(group)} times (the others: summary.json, failure-{n}/trace.json)")
        if failure.unreplayable:
            print(f"  warning: {failure.unreplayable} No program to re-run: run the same command "
                  f"again to see how often it recurs.")
            if result.config.transport == "sim":
                print("  (on the sim every failure replays: this one is also a determinism bug of statemodel "
                      "or of the machine; please report it)")
        elif failure.reproduced is False:
            print("  warning: re-running the shrunk program did not fail the same way (flaky?)")
        elif failure.replay_matches is False and result.config.transport == "sim":
            print("  warning: re-running the program recorded something else than Hypothesis' run of it "
                  "(a determinism bug: please report it)")
        if not failure.shrunk:
            budget = result.config.shrink_budget
            stopped = {w.worker: w.shrink_stopped for w in result.workers}.get(failure.worker)
            print("  note: not shrunk (--shrink-budget 0)" if budget == 0 else
                  "  note: shrinking was interrupted; the same command (same --seed) may give a shorter "
                  "program" if stopped == "interrupted" else
                  f"  note: shrinking stopped after its {budget:g} s budget; a longer --shrink-budget "
                  f"may give a shorter program")
        if report_dir is not None and failure.program:
            print(f"  reproducer: {report_dir / f'failure-{n}' / 'repro_test.py'}")
        elif report_dir is not None:  # nothing replays: no repro_test.py is written
            print(f"  report: {report_dir / f'failure-{n}'} (trace.json; no reproducer without a program)")
        if failure.program:
            print("  " + failure.program.replace("\n", "\n  "))


def checked_config(args: argparse.Namespace):
    """The run's config once everything that can be checked before a run is (machine, target,
    database, report directory), else the one-line reason it cannot run (exit 2)."""
    from statemodel import report
    from statemodel.fuzz import DatabaseError, MachineUnavailable
    from statemodel.target.preflight import TargetUnavailable

    config = config_from_args(args)
    try:
        preflight(config)
    except (MachineUnavailable, DatabaseError, ValueError, TargetUnavailable) as exc:
        return None, str(exc)
    if args.report:
        try:
            report.prepare(args.report)
        except OSError as exc:
            return None, f"cannot write the report to {args.report}: {exc.strerror or exc}"
    return config, None


def run(args: argparse.Namespace) -> int:
    from statemodel import report
    from statemodel.fuzz import run as fuzz_run
    from statemodel.fuzz.progress import Progress

    config, why_not = checked_config(args)
    if config is None:
        return error("fuzz", why_not)
    print(f"statemodel fuzz: seed {config.seed}, {config.workers} worker(s), profile {config.profile}, "
          f"target {config.target} over {config.transport}"
          + (f", mutants {', '.join(config.mutants)}" if config.mutants else ""), file=sys.stderr)
    if config.target != args.target:  # FuzzConfig marked it: say what the mark does
        print(SHARED_NOTE, file=sys.stderr)
    clock = "virtual" if config.transport == "sim" else "real"
    with Progress(config.workers, interval=args.progress_interval, clock=clock) as progress:
        result = fuzz_run(config, progress)
    out = None
    if args.report:
        try:
            out = report.write(result, args.report)
        except OSError as exc:
            return error("fuzz", f"cannot write the report to {args.report}: {exc}")
    all_failures = len(result.all_failures)
    discarded = f" ({result.discarded} more discarded unfinished)" if result.discarded else ""
    print(f"examples {result.examples}{discarded}, steps {result.steps}, shrink runs {result.shrink_runs}, "
          f"replays {result.replays}, failures {len(result.failures)}"
          + (f" ({all_failures} reported, grouped by root cause)" if all_failures != len(result.failures) else "")
          + f", trace_digest {result.trace_digest}")
    rates = result.rates
    shrinking = max((w.shrink_seconds for w in result.workers), default=0.0)
    memory = result.memory
    rss = (f"; worker RSS peak {memory['peak_mib']:.0f} MiB, plateau {memory['plateau_mib']:.0f} MiB"
           if memory["peak_mib"] is not None and memory["plateau_mib"] is not None else "")
    # Generating rates are each worker's own (start-up, shrinking and batch ends excluded), summed;
    # beside them, steps over the run's wall time: with workers the two differ (37 vs 61.7 steps/s in
    # BENCHMARKS.md's 4-worker tcp run), and "N steps/s ... (T s wall)" read as steps / T.
    summed = f" (the sum of {len(result.workers)} workers' own)" if len(result.workers) > 1 else ""
    overall = result.steps / result.elapsed if result.elapsed > 0 else 0.0
    print(f"rate {rates['examples_per_s']:.2f} examples/s, {rates['steps_per_s']:.1f} steps/s generating{summed}; "
          f"{overall:.1f} steps/s over the run's {result.elapsed:.0f} s wall"
          + (f" ({shrinking:.0f} s of it shrinking)" if shrinking else "") + rss)
    from statemodel.fuzz.machine import DEFAULT_MACHINE, machine_spec

    if result.examples and (result.scenarios or machine_spec(config.machine) == DEFAULT_MACHINE):
        from statemodel.machine.coverage import format_table

        print(format_table(result.scenarios, result.examples))
    print_failures(result, out)
    for w in result.workers:
        if w.note:
            print(f"statemodel fuzz: worker {w.worker}: {w.note}", file=sys.stderr)
    for err in result.errors:
        error("fuzz", err)
    if result.interrupted:
        print("statemodel fuzz: interrupted; results above are partial", file=sys.stderr)
    return result.exit_code
