"""`statemodel serve`: run the reference resumable-stream server on TCP."""

from __future__ import annotations

import argparse

from statemodel.cli.args import error, flatten, host, mutant, port, url_host

HELP = "Run the reference resumable-stream server (PROTOCOL.md v1) on TCP."

APPS = ("demo", "script")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", type=host, default="127.0.0.1", help="Address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=port, default=8765, help="TCP port, 0-65535 (0 = any free port; default 8765)")
    parser.add_argument("--app", choices=APPS, default="demo",
                        help="Application behind every stream: demo (text/JSON/binary/multipart example) or "
                             "script (the tester's scripted app, PROTOCOL.md appendix A); default demo")
    parser.add_argument("--mutant", type=mutant, action="append", default=[], metavar="NAME",
                        help="Switch on a reference-implementation bug (repeatable; see `statemodel mutants --list`)")


def run(args: argparse.Namespace) -> int:
    import trio

    from statemodel.stream.config import Config
    from statemodel.stream.demo import demo_app
    from statemodel.stream.server import Server
    from statemodel.stream.testapp import script_app

    app = demo_app if args.app == "demo" else script_app
    server = Server(app, Config(mutants=frozenset(flatten(args.mutant))))

    async def root() -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve_tcp, args.host, args.port)
            print(f"statemodel serve: ws://{url_host(args.host)}:{port}/ app={args.app} epoch={server.epoch}", flush=True)

    failed: list[OSError] = []
    try:
        trio.run(root)
    except* OSError as group:
        failed.extend(group.exceptions)
    if failed:
        return error("serve", f"cannot serve on {url_host(args.host)}:{args.port}: {failed[0]}")
    return 0
