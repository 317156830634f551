"""`statemodel proxy`: a loopback TCP fault proxy with a JSON control API, standalone."""

from __future__ import annotations

import argparse
import sys

HELP = "run the TCP fault proxy in front of any (WebSocket) server, controlled over JSON/HTTP"


def _hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT (e.g. 127.0.0.1:9000), got {text!r}")
    return host.strip("[]"), int(port)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", type=_hostport, default=("127.0.0.1", 0),
                        help="address the proxy accepts clients on (port 0 = pick one; default 127.0.0.1:0)")
    parser.add_argument("--upstream", type=_hostport, required=True, help="the server to forward to, HOST:PORT")
    parser.add_argument("--control", type=_hostport, default=None,
                        help="address of the JSON control API (GET/POST /faults, DELETE /faults/<id>, "
                             "POST /enable|/disable|/reset, GET /links, GET /trace)")
    parser.add_argument("--seed", type=int, default=0, help="seed for jitter (default 0)")
    parser.add_argument("--byte-trace", action="store_true",
                        help="also trace every read/write (GET /trace); default: faults and connections only")


def run(args: argparse.Namespace) -> int:
    import trio

    from statemodel.net.control import ControlServer
    from statemodel.net.tcp import FaultProxy

    proxy = FaultProxy(upstream=args.upstream, listen=args.listen, seed=args.seed,
                       record_bytes=args.byte_trace)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(proxy.serve)
            line = f"proxy listening on {args.listen[0]}:{port} -> {args.upstream[0]}:{args.upstream[1]}"
            if args.control is not None:
                control = ControlServer(proxy, args.control)
                cport = await nursery.start(control.serve)
                line += f"; control on http://{args.control[0]}:{cport}"
            print(line, flush=True)

    try:
        trio.run(main)
    except OSError as exc:
        print(f"statemodel proxy: {exc}", file=sys.stderr)
        return 2
    return 0
