"""`statemodel proxy`: a loopback TCP fault proxy with a JSON control API, standalone."""

from __future__ import annotations

import argparse

from statemodel.cli.args import error, hostport, seed, url_host

HELP = "Run the TCP fault proxy in front of any (WebSocket) server, controlled over JSON/HTTP."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", type=hostport, default=("127.0.0.1", 0),
                        help="Address the proxy accepts clients on (port 0 = pick one; default 127.0.0.1:0)")
    parser.add_argument("--upstream", type=hostport, required=True, help="The server to forward to, HOST:PORT")
    parser.add_argument("--control", type=hostport, default=None,
                        help="Address of the JSON control API (GET/POST /faults, DELETE /faults/<id>, "
                             "POST /enable|/disable|/reset, GET /links, GET /trace); default: no control API")
    parser.add_argument("--seed", type=seed, default=0, help="Seed for jitter and packet loss (default 0)")
    parser.add_argument("--byte-trace", action="store_true",
                        help="Also trace every read/write (GET /trace); default: faults and connections only")


def run(args: argparse.Namespace) -> int:
    import trio

    from statemodel.net.control import ControlServer
    from statemodel.net.tcp import FaultProxy

    proxy = FaultProxy(upstream=args.upstream, listen=args.listen, seed=args.seed,
                       record_bytes=args.byte_trace)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(proxy.serve)
            line = (f"proxy listening on {url_host(args.listen[0])}:{port} -> "
                    f"{url_host(args.upstream[0])}:{args.upstream[1]}")
            if args.control is not None:
                control = ControlServer(proxy, args.control)
                cport = await nursery.start(control.serve)
                line += f"; control on http://{url_host(args.control[0])}:{cport}"
            print(line, flush=True)

    failed: list[OSError] = []
    try:
        trio.run(main)
    except* OSError as group:  # trio wraps what the nursery's tasks raised in a group
        failed.extend(group.exceptions)
    if failed:
        return error("proxy", f"cannot listen on {url_host(args.listen[0])}:{args.listen[1]}"
                     + (f" or {url_host(args.control[0])}:{args.control[1]}" if args.control else "")
                     + f": {failed[0]}")
    return 0
