"""The `statemodel` command: one subcommand per module, each with HELP, add_arguments, run."""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = ("fuzz", "replay", "mutants", "conform", "bench", "serve", "proxy", "soak")


def build_parser() -> argparse.ArgumentParser:
    from statemodel import __version__

    parser = argparse.ArgumentParser(
        prog="statemodel",
        description="Property-based state-machine testing of resumable WebSocket streams.",
    )
    parser.add_argument("--version", action="version", version=f"statemodel {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"statemodel.cli.{name}")
        except ModuleNotFoundError as exc:  # a subcommand not built yet
            if exc.name != f"statemodel.cli.{name}":
                raise
            continue
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _only_interrupts(exc: BaseException) -> bool:
    """A Ctrl-C, bare or as trio raises it out of a nursery (inside an exception group)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_interrupts(e) for e in exc.exceptions)
    return isinstance(exc, KeyboardInterrupt)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except BaseException as exc:
        # Ctrl-C is how `serve`, `proxy` and `bench` stop: one line, not trio's group traceback.
        if not _only_interrupts(exc):
            raise
        print(f"statemodel {args.command}: error: interrupted", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
