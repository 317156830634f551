"""`statemodel soak`: long run on real loopback TCP with faults and hostile peers; fails on
invariant violations, RSS growth after warm-up, or fds/tasks not returning to baseline."""

from __future__ import annotations

import argparse
import json
import sys

from statemodel.cli.args import error, fraction, positive_float, positive_int, seconds, seed

HELP = ("Soak the reference server (or --target ws://…) on loopback: honest sessions through "
        "a fault proxy plus hostile peers; report RSS/fds/tasks and fail on leaks.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=positive_float, default=60.0, help="Seconds of load (default 60)")
    parser.add_argument("--sessions", type=positive_int, default=10, help="Concurrent honest sessions (default 10)")
    parser.add_argument("--seed", type=seed, default=0, help="Seed of faults, attacks and payloads (default 0)")
    parser.add_argument("--target", metavar="URL", help="Attack/soak an external server at ws://host:port/ "
                        "instead of a reference server subprocess (no RSS/fd figures then)")
    parser.add_argument("--hostile-only", action="store_true", help="Run only the hostile attacks (every one, "
                        "repeatedly, for --duration); each must get its documented answer")
    parser.add_argument("--no-slow-attacks", action="store_true", help="Skip attacks that hold a connection "
                        "for seconds (slowloris, silent peers, never-ack readers, session floods)")
    parser.add_argument("--no-hostile", action="store_true", help="Honest sessions and faults only")
    parser.add_argument("--max-sessions", type=positive_int, help="The server's max_sessions (reference default: "
                        "sessions + 64; for --target it enables the session-flood attack)")
    parser.add_argument("--session-ttl", type=positive_float, default=30.0,
                        help="Reference server session_ttl in seconds (default 30)")
    parser.add_argument("--rss-growth", type=fraction, default=0.10, help="Allowed RSS growth, fraction (default 0.10)")
    parser.add_argument("--rss-slack-mib", type=fraction, default=8.0, help="Allowed RSS growth, MiB on top (default 8)")
    parser.add_argument("--nofile", type=positive_int, help="Reference server's RLIMIT_NOFILE; a pressure round "
                        "opens more connections than that (default: its pre-hello budget, 128)")
    parser.add_argument("--pressure-every", type=seconds, default=120.0, help="Seconds between pressure rounds: "
                        "fd exhaustion or a pre-hello memory flood (default 120; 0 = none)")
    parser.add_argument("--latency-bound", type=positive_float, help="Fail if an honest probe request takes longer "
                        "(seconds; default 2 x (the documented fairness bound + one heartbeat interval) = 12 s)")
    parser.add_argument("--report", metavar="DIR", help="Write DIR/summary.json")
    parser.add_argument("--json", action="store_true", help="Print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    import trio

    from statemodel.soak import SoakConfig, soak, summary_lines, write_report

    try:
        cfg = SoakConfig(duration=args.duration, sessions=args.sessions, seed=args.seed, target=args.target,
                         hostile=not args.no_hostile, hostile_only=args.hostile_only,
                         slow_attacks=not args.no_slow_attacks,
                         max_sessions=args.max_sessions, session_ttl=args.session_ttl,
                         rss_growth=args.rss_growth, rss_slack_mib=args.rss_slack_mib, nofile=args.nofile,
                         pressure_every=args.pressure_every, latency_bound=args.latency_bound)
    except ValueError as exc:
        return error("soak", str(exc))

    def progress(sample, honest) -> None:
        if not args.json:
            rss = f"{sample.rss / 2**20:.1f}MiB" if sample.rss else "-"
            print(f"t={sample.t:7.1f}s rss={rss} fds={sample.fds} tasks={sample.tasks} "
                  f"sessions={sample.sessions} conns={sample.connections} streams_ok={honest.streams}",
                  file=sys.stderr, flush=True)

    if args.target:  # an unreachable or foreign server is named before any load runs
        from statemodel.machine import MachineOptions
        from statemodel.target.preflight import TargetUnavailable, preflight

        try:
            preflight(MachineOptions(target=args.target, transport="tcp"))
        except (TargetUnavailable, ValueError) as exc:
            return error("soak", f"infrastructure: {exc}")
    try:
        result = trio.run(soak, cfg, progress)
    except (OSError, RuntimeError) as exc:
        return error("soak", f"infrastructure: {exc}")
    if args.report:
        write_report(result, args.report)
    if args.json:
        print(json.dumps({k: v for k, v in result.to_json().items() if k != "samples"}, default=str))
    else:
        print("\n".join(summary_lines(result)))
    return 0 if result.passed else 1
