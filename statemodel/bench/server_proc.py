"""A reference server in its own process, so the memory figure is the server's RSS alone.

``python -m statemodel.bench.server_proc`` serves ``script_app`` with the default ``Config``
on 127.0.0.1 (any free port), prints ``port <n>`` and exits when its stdin closes, so it
never outlives the benchmark that spawned it. ``--bare`` instead prints the peak RSS of an
interpreter with only trio and trio-websocket imported (the anchor) and exits.
``--trace`` runs under ``tracemalloc`` and, on exit, prints ``trace <json>``: the allocation
sites that grew most between idle and the traced peak (a profile, not the figure: tracing
itself costs RSS).
"""

from __future__ import annotations

import json
import sys
import tracemalloc


def peak_rss_kib(pid: str | int = "self") -> int:
    """VmHWM (peak resident set, KiB) from /proc: the kernel's own high-water mark, so no
    sampling can miss a short peak."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("VmHWM not found in /proc/<pid>/status (Linux only)")


def unmemoized_app():
    """``script_app`` without ``testapp``'s ``blob``/``text`` memo.

    The memo exists for the tester, whose model derives the same chunks as the app in one
    process. A server process alone never re-derives a chunk (a resume replays the buffer,
    it does not re-run the app), so the memo has no hits here and would only keep recent
    chunks resident (up to 40 MiB of app data), which is not the stream's memory."""
    from statemodel.stream import testapp

    testapp.set_memo(0, 0)
    return testapp.script_app


def _top_growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, n: int = 12) -> list[dict]:
    skip = [tracemalloc.Filter(False, tracemalloc.__file__)]
    stats = after.filter_traces(skip).compare_to(before.filter_traces(skip), "lineno")
    return [{"site": f"{s.traceback[0].filename}:{s.traceback[0].lineno}", "kib": round(s.size_diff / 1024, 1),
             "blocks": s.count_diff} for s in stats[:n]]


def main(argv: list[str]) -> int:
    trace = "--trace" in argv
    if trace:
        tracemalloc.start()
    import trio
    import trio_websocket  # noqa: F401 - part of the anchor's footprint

    if "--bare" in argv:
        print(f"peak_kib {peak_rss_kib()}", flush=True)
        return 0

    from statemodel.stream.config import Config
    from statemodel.stream.server import Server

    server = Server(unmemoized_app(), Config())
    snaps: dict[str, tracemalloc.Snapshot] = {}

    async def sample_peak() -> None:
        """Keep the snapshot taken at the highest traced total seen (every 10 ms)."""
        high = 0
        while True:
            await trio.sleep(0.01)
            current = tracemalloc.get_traced_memory()[0]
            if current > high:
                high, snaps["peak"] = current, tracemalloc.take_snapshot()

    async def main_async() -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve_tcp, "127.0.0.1", 0)
            if trace:
                snaps["idle"] = tracemalloc.take_snapshot()
                nursery.start_soon(sample_peak)
            print(f"port {port}", flush=True)
            # Exit when the parent closes our stdin (or dies): never an orphaned server.
            stdin = trio.lowlevel.FdStream(0)
            while await stdin.receive_some(1024):
                pass
            nursery.cancel_scope.cancel()

    trio.run(main_async)
    if trace:
        peak = tracemalloc.get_traced_memory()[1]
        top = _top_growth(snaps["idle"], snaps.get("peak", snaps["idle"]))
        print("trace " + json.dumps({"traced_peak_mib": peak / 2**20, "top_growth": top}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
