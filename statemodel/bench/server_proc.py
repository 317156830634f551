"""A reference server in its own process, so the memory figure is the server's RSS alone.

``python -m statemodel.bench.server_proc`` serves ``script_app`` with the default ``Config``
on 127.0.0.1 (any free port), prints ``port <n>`` and exits when its stdin closes, so it
never outlives the benchmark that spawned it. ``--bare`` instead prints the peak RSS of an
interpreter with only trio and trio-websocket imported (the anchor) and exits.
"""

from __future__ import annotations

import sys


def peak_rss_kib(pid: str | int = "self") -> int:
    """VmHWM (peak resident set, KiB) from /proc: the kernel's own high-water mark, so no
    sampling can miss a short peak."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("VmHWM not found in /proc/<pid>/status (Linux only)")


def main(argv: list[str]) -> int:
    import trio
    import trio_websocket  # noqa: F401 - part of the anchor's footprint

    if "--bare" in argv:
        print(f"peak_kib {peak_rss_kib()}", flush=True)
        return 0

    from statemodel.stream.config import Config
    from statemodel.stream.server import Server
    from statemodel.stream.testapp import script_app

    server = Server(script_app, Config())

    async def main_async() -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve_tcp, "127.0.0.1", 0)
            print(f"port {port}", flush=True)
            # Exit when the parent closes our stdin (or dies): never an orphaned server.
            stdin = trio.lowlevel.FdStream(0)
            while await stdin.receive_some(1024):
                pass
            nursery.cancel_scope.cancel()

    trio.run(main_async)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
