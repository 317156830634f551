"""The soak's server process: the reference server plus a stats line every interval.

Run as ``python -m statemodel.soak.server --port 0``. It prints ``READY <port> <pid>`` once
listening, then one JSON line per ``--interval`` on stdout: ``server.stats()`` plus the number
of live trio tasks (walked from the root task); log records of WARNING and up go to stderr, one
line each. A separate process so the soak can measure *its* RSS and open file descriptors with
psutil, untouched by the client side's own memory.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import trio

from statemodel.stream.config import Config
from statemodel.stream.server import Server
from statemodel.stream import testapp
from statemodel.stream.testapp import script_app


def count_tasks() -> int:
    """Live tasks in this trio run: a leak of per-connection tasks shows up here."""
    todo, n = [trio.lowlevel.current_root_task()], 0
    while todo:
        task = todo.pop()
        n += 1
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return n


def soak_config(max_sessions: int, session_ttl: float) -> Config:
    """Defaults of PROTOCOL.md §9, except the two limits a soak must reach in minutes."""
    return Config(max_sessions=max_sessions, session_ttl=session_ttl, replay_max_age=min(60.0, session_ttl))


async def serve(args: argparse.Namespace) -> None:
    # The app's memo of recent outputs serves a tester deriving the same chunks as the app;
    # a server alone never derives one twice, and filling it (40 MiB) looks like a leak.
    testapp.set_memo(0, 0)
    server = Server(script_app, soak_config(args.max_sessions, args.session_ttl))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve_tcp, "127.0.0.1", args.port)
        print(f"READY {port} {os.getpid()}", flush=True)
        while True:
            line = {"t": trio.current_time(), "tasks": count_tasks(), **server.stats()}
            print(json.dumps(line), flush=True)
            await trio.sleep(args.interval)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m statemodel.soak.server")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--max-sessions", type=int, default=10_000)
    p.add_argument("--session-ttl", type=float, default=120.0)
    args = p.parse_args(argv)
    # One line per record on stderr: the soak fails on any ERROR (a contained failure of the
    # server's own) or traceback it reads there.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        trio.run(serve, args)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # the soak went away: nothing left to report to
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
