"""Peak RSS of a reference server process serving many 2 MiB responses while clients drop.

The server runs in a subprocess (``server_proc``) so its high-water mark (``VmHWM``) is its
own; the clients run here. Every client cuts its first connection abruptly after a seeded
number of received bytes (mid-message) and must still get its response byte for byte by
resuming. The anchor is a bare interpreter with trio + trio-websocket imported.
``python -m statemodel.bench.memory [clients] [--trace]`` prints the figure; ``--trace``
adds the server's top allocation sites at its traced peak (tracing inflates the RSS figure).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from typing import Any

import trio

from statemodel.bench.loopback import HOST, Killable
from statemodel.bench.server_proc import peak_rss_kib
from statemodel.stream.client import Client
from statemodel.stream.config import Config
from statemodel.stream.testapp import blob

MiB = 1024 * 1024


class CutAfter(Killable):
    """Cuts the connection (RST) once `budget` bytes were received: a client whose budget is
    below its response's size is always cut mid-message, however the bytes arrive."""

    def __init__(self, inner: trio.SocketStream, budget: int | None) -> None:
        super().__init__(inner)
        self.budget = budget

    async def receive_some(self, max_bytes=None):
        if self.budget is not None and self.budget <= 0:
            await self.kill()
            raise trio.BrokenResourceError("cut by the benchmark")
        if self.budget is not None:
            # Never read past the cut: one big read under load could hold the whole response,
            # and that client was then never cut (the count of resumes depended on load).
            max_bytes = self.budget if max_bytes is None else min(max_bytes, self.budget)
        data = await self.inner.receive_some(max_bytes)
        if self.budget is not None:
            self.budget -= len(data)
        return data


def bare_peak_kib() -> int:
    out = subprocess.run([sys.executable, "-m", "statemodel.bench.server_proc", "--bare"],
                         capture_output=True, text=True, timeout=60, check=True)
    return int(out.stdout.split()[1])


async def _clients(port: int, clients: int, size: int, drops: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    counts = {"connects": 0, "ok": 0}
    cfg = Config(backoff_base=0.01)

    async def one(i: int) -> None:
        budgets = [rng.randrange(64 * 1024, size) for _ in range(drops)]

        async def connect() -> trio.abc.Stream:
            counts["connects"] += 1
            return CutAfter(await trio.open_tcp_stream(HOST, port), budgets.pop(0) if budgets else None)

        payload = json.dumps({"op": "batch", "commands": [
            {"op": "emit", "chunks": [{"kind": "bytes", "seed": i, "size": size}]}, {"op": "end"}]})
        client = Client(connect, cfg, rng=random.Random(seed * 7919 + i))
        async with client.run():
            got = [chunk async for chunk in client.request(payload)]
        if got != [blob(i, size)]:
            raise RuntimeError(f"client {i}: response differs from what the server app sent")
        counts["ok"] += 1

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            for i in range(clients):
                nursery.start_soon(one, i)
    return counts


def measure(clients: int = 100, size: int = 2 * MiB, drops: int = 1, seed: int = 0,
            trace: bool = False) -> dict[str, Any]:
    """Spawn the server, run `clients` concurrent requests of `size` bytes with `drops` cuts each."""
    proc = subprocess.Popen([sys.executable, "-m", "statemodel.bench.server_proc", *(["--trace"] if trace else [])],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if not line.startswith("port "):
            raise RuntimeError(f"server process did not start: {line!r}")
        port = int(line.split()[1])
        idle_kib = peak_rss_kib(proc.pid)
        counts = trio.run(_clients, port, clients, size, drops, seed)
        peak_kib = peak_rss_kib(proc.pid)
        # communicate() closes stdin: the server exits, with --trace printing its profile first.
        out, _ = proc.communicate(timeout=60)
        traced = [json.loads(line[6:]) for line in out.splitlines() if line.startswith("trace ")]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    bare = bare_peak_kib()
    return {
        "server_peak_mib": peak_kib / 1024,
        "server_idle_peak_mib": idle_kib / 1024,
        "bare_interpreter_mib": bare / 1024,
        "clients": clients,
        "size": size,
        "drops_per_client": drops,
        "connects": counts["connects"],
        "responses_ok": counts["ok"],
        "app": "script_app without testapp's blob/text memo (server_proc.unmemoized_app)",
        **({"trace": traced[0] if traced else None} if trace else {}),
    }


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--trace"]
    print(json.dumps(measure(int(args[0]) if args else 100, trace="--trace" in sys.argv), indent=2))
