"""Loopback TCP figures, each beside its anchor measured in the same trio run.

* reconnect + resume latency of the reference client/server vs raw trio-websocket
  connect + close (alternating, each after the same idle pause);
* throughput of a 2 MiB response through the protocol vs raw trio-websocket (alternating
  requests on connections open side by side; medians, plus a CPU-time ratio);
* fault-proxy overhead with no faults: round-trip latency added and throughput vs direct.

Wall clock on purpose (this is the benchmark, not a test); every await is bounded so a
broken server ends the figure with an error instead of hanging the run.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, AsyncIterator, Awaitable, Callable

import trio
from trio_websocket import connect_websocket, serve_websocket

from statemodel.net.tcp import FaultProxy
from statemodel.stream.client import Client, Connected, Resumed
from statemodel.stream.config import Config
from statemodel.stream.server import Server

MiB = 1024 * 1024
HOST = "127.0.0.1"
BOUND = 60.0  # seconds: no single figure may take longer than this


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


# ---- anchors: raw trio-websocket ---------------------------------------------------------
# The anchor gets the same WebSocket buffer sizes the protocol runs with (trio-websocket's
# 4 KiB default receive buffer would make the anchor slow and the ratio flattering).
def _ws_options(config: Config = Config()) -> dict[str, int]:
    return dict(message_queue_size=config.ws_message_queue_size, max_message_size=4 * MiB,
                receive_buffer_size=config.ws_receive_buffer_size)


async def _raw_ws_server(nursery: trio.Nursery, payload: bytes | None, config: Config = Config()) -> int:
    """A trio-websocket server: sends `payload` once per message received (or just accepts)."""

    async def handler(request) -> None:
        ws = await request.accept()
        try:
            while True:
                await ws.get_message()
                if payload is not None:
                    await ws.send_message(payload)
        except Exception:  # noqa: BLE001 - the client went away: that is the end of the test
            return

    server = await nursery.start(
        lambda task_status: serve_websocket(handler, HOST, 0, None, **_ws_options(config), task_status=task_status)
    )
    return server.port


async def raw_connect_close(n: int) -> list[float]:
    """Seconds per raw trio-websocket connect (TCP + opening handshake) + close, n times."""
    samples = []
    async with trio.open_nursery() as nursery:
        port = await _raw_ws_server(nursery, None)
        for _ in range(n):
            start = time.perf_counter()
            with trio.fail_after(BOUND):
                async with trio.open_nursery() as inner:
                    ws = await connect_websocket(inner, HOST, port, "/", use_ssl=False)
                    await ws.aclose()
            samples.append(time.perf_counter() - start)
        nursery.cancel_scope.cancel()
    return samples


async def raw_throughput(size: int, repeats: int) -> float:
    """Bytes/s of `size`-byte messages from a raw trio-websocket server, best of `repeats`."""
    payload = random.Random(1).randbytes(size)
    best = 0.0
    async with trio.open_nursery() as nursery:
        port = await _raw_ws_server(nursery, payload)
        async with trio.open_nursery() as inner:
            ws = await connect_websocket(inner, HOST, port, "/", use_ssl=False, **_ws_options())
            for _ in range(repeats):
                start = time.perf_counter()
                with trio.fail_after(BOUND):
                    await ws.send_message(b"go")
                    got = await ws.get_message()
                assert len(got) == size
                best = max(best, size / (time.perf_counter() - start))
            with trio.move_on_after(2):
                await ws.aclose()
            inner.cancel_scope.cancel()
        nursery.cancel_scope.cancel()
    return best


# ---- the protocol ------------------------------------------------------------------------
class Killable(trio.abc.Stream):
    """A TCP stream the benchmark can cut abruptly (RST, no WebSocket close)."""

    def __init__(self, inner: trio.SocketStream) -> None:
        self.inner = inner

    async def send_all(self, data) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes=None):
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def kill(self) -> None:
        try:
            self.inner.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        await trio.aclose_forcefully(self.inner)


def _payload_app(payload: bytes):
    async def app(request):
        # open payload "n": n copies of the payload, then end; otherwise wait for messages
        if request.payload == "hold":
            async for _ in request.messages():
                pass
            return
        for _ in range(int(request.payload)):
            yield payload

    return app


async def _next_status(client: Client, kinds: tuple[type, ...]) -> Any:
    while True:
        status = await client.status.receive()
        if isinstance(status, kinds):
            return status


async def alternate(n: int, idle: float, ops: dict[str, Callable[[], Awaitable[None]]],
                    clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """`n` rounds of every op in `ops`, in order, each after `idle` seconds of doing nothing
    and timed alone (seconds per op by `clock`); each op is bounded by BOUND.

    A figure and its anchor must meet the same conditions: after an idle pause a process
    runs colder (caches, and on a shared host the CPU it gets), so an op timed after one
    costs more than the same op timed back to back (raw connect+close on the 2-core bench
    host: p50 1.4 -> 2.3-6 ms, p99 3-6 -> 15-30 ms)."""
    samples: dict[str, list[float]] = {name: [] for name in ops}
    for _ in range(n):
        for name, op in ops.items():
            await trio.sleep(idle)
            with trio.fail_after(BOUND):
                start = clock()
                await op()
                samples[name].append(clock() - start)
    return samples


@asynccontextmanager
async def _resumable(config: Config) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """A reference server and client over loopback with a live stream; yields `cut()`: one
    abrupt cut of the client's TCP connection, returning at `Resumed(recovered)`."""
    server = Server(_payload_app(b""), config, rng=random.Random(1))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve_tcp, HOST, 0)
        current: list[Killable] = []

        async def connect() -> trio.abc.Stream:
            stream = Killable(await trio.open_tcp_stream(HOST, port))
            current.append(stream)
            return stream

        async def cut() -> None:
            await current[-1].kill()
            status = await _next_status(client, (Resumed,))
            if status.outcome != "recovered":
                raise RuntimeError(f"resume did not recover: {status}")

        client = Client(connect, config, rng=random.Random(2))
        async with client.run():
            with trio.fail_after(BOUND):
                await _next_status(client, (Connected,))
                await client.open("hold")  # a live stream the resume must carry over
                await trio.sleep(0.01)
            yield cut
        nursery.cancel_scope.cancel()


async def _raw_once_factory(nursery: trio.Nursery) -> Callable[[], Awaitable[None]]:
    port = await _raw_ws_server(nursery, None)

    async def raw_once() -> None:
        async with trio.open_nursery() as inner:
            ws = await connect_websocket(inner, HOST, port, "/", use_ssl=False)
            await ws.aclose()

    return raw_once


def _healthy_quickly(config: Config) -> Config:
    return replace(config, healthy_after=min(config.healthy_after, 0.1))


async def protocol_reconnect(n: int, config: Config = Config()) -> list[float]:
    """Seconds from an abrupt cut of the client's TCP connection to `Resumed(recovered)`.

    Each cut hits a *healthy* connection (PROTOCOL.md §11): cuts back to back are what the
    client's backoff slows down on purpose (a server that drops every connection right
    after welcome), so the client counts a connection healthy after 0.1 s and each cut
    waits that long; the resume itself is the same."""
    config = _healthy_quickly(config)
    async with _resumable(config) as cut:
        return (await alternate(n, config.healthy_after, {"resume": cut}))["resume"]


async def reconnect_side_by_side(n: int, config: Config = Config()) -> dict[str, list[float]]:
    """`protocol_reconnect` with its anchor under the same conditions: rounds of a raw
    trio-websocket connect+close, then a cut, each after the same idle `healthy_after`
    (the pause every cut needs, see `protocol_reconnect`). `raw_connect_close` times its
    connects back to back, which the cuts cannot be since 03c64c2: against it, a cut paid
    for the pause before it as if it were the protocol's cost."""
    config = _healthy_quickly(config)
    async with trio.open_nursery() as nursery:
        raw_once = await _raw_once_factory(nursery)
        async with _resumable(config) as cut:
            samples = await alternate(n, config.healthy_after, {"raw": raw_once, "resume": cut})
        nursery.cancel_scope.cancel()
    return samples


async def protocol_throughput(size: int, repeats: int, config: Config = Config()) -> float:
    """Bytes/s of `size`-byte responses through the reference client/server, best of `repeats`."""
    payload = random.Random(1).randbytes(size)
    server = Server(_payload_app(payload), config, rng=random.Random(1))
    best = 0.0
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve_tcp, HOST, 0)

        async def connect() -> trio.abc.Stream:
            return await trio.open_tcp_stream(HOST, port)

        client = Client(connect, config, rng=random.Random(2))
        async with client.run():
            for _ in range(repeats):
                start = time.perf_counter()
                with trio.fail_after(BOUND):
                    got = [chunk async for chunk in client.request("1")]
                assert len(got) == 1 and len(got[0]) == size
                best = max(best, size / (time.perf_counter() - start))
        nursery.cancel_scope.cancel()
    return best


def pin_malloc() -> bool:
    """Keep large buffers on glibc's heap for the rest of this process (False if not glibc).

    By default glibc serves a 2 MiB buffer either by mmap (fresh pages: a page fault every
    4 KiB, ~3x slower copies) or from the heap, switching with the process's history, so
    the raw anchor ran at 1.2-1.6 ms or at 4 ms per 2 MiB message from one run to the next.
    Fixed thresholds keep it in its fast mode: a stable and conservative anchor."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
        return bool(libc.mallopt(m_mmap_threshold, 32 * MiB)) and bool(libc.mallopt(m_trim_threshold, 128 * MiB))
    except (OSError, AttributeError):
        return False


async def throughput_side_by_side(size: int, repeats: int, config: Config = Config()) -> dict[str, Any]:
    """2 MiB-style throughput of raw trio-websocket and of the protocol, measured in
    alternating requests over connections open side by side (same buffers, same moment), so
    a neighbour's burst hits both. Rates are size / median time; `cpu_ratio` compares the
    median process CPU time per response (the one-thread benchmark owns both ends, so CPU
    time is the cost with the host's contention taken out)."""
    payload = random.Random(1).randbytes(size)
    server = Server(_payload_app(payload), config, rng=random.Random(1))
    wall: dict[str, list[float]] = {"raw": [], "protocol": []}
    cpu: dict[str, list[float]] = {"raw": [], "protocol": []}
    async with trio.open_nursery() as nursery:
        raw_port = await _raw_ws_server(nursery, payload, config)  # the same WebSocket buffers
        port = await nursery.start(server.serve_tcp, HOST, 0)

        async def connect() -> trio.abc.Stream:
            return await trio.open_tcp_stream(HOST, port)

        async def raw_once() -> int:
            await ws.send_message(b"go")
            return len(await ws.get_message())

        async def protocol_once() -> int:
            return sum([len(chunk) async for chunk in client.request("1")])

        client = Client(connect, config, rng=random.Random(2))
        async with trio.open_nursery() as inner, client.run():
            ws = await connect_websocket(inner, HOST, raw_port, "/", use_ssl=False, **_ws_options(config))
            runs = (("raw", raw_once), ("protocol", protocol_once))
            for i in range(repeats + 1):  # the first pair warms both paths up and is not kept
                for name, once in runs if i % 2 else runs[::-1]:
                    start, start_cpu = time.perf_counter(), time.process_time()
                    with trio.fail_after(BOUND):
                        got = await once()
                    if got != size:
                        raise RuntimeError(f"{name}: got {got} bytes, expected {size}")
                    if i:
                        wall[name].append(time.perf_counter() - start)
                        cpu[name].append(time.process_time() - start_cpu)
            with trio.move_on_after(2):
                await ws.aclose()
            inner.cancel_scope.cancel()
        nursery.cancel_scope.cancel()
    raw_t, proto_t = statistics.median(wall["raw"]), statistics.median(wall["protocol"])
    return {
        "raw_bytes_per_s": size / raw_t, "protocol_bytes_per_s": size / proto_t, "ratio": raw_t / proto_t,
        "raw_best_bytes_per_s": size / min(wall["raw"]), "protocol_best_bytes_per_s": size / min(wall["protocol"]),
        "cpu_ratio": statistics.median(cpu["raw"]) / statistics.median(cpu["protocol"]),
        "raw_cpu_s": statistics.median(cpu["raw"]), "protocol_cpu_s": statistics.median(cpu["protocol"]),
        "size": size, "repeats": repeats,
    }


# ---- fault proxy, no faults --------------------------------------------------------------
async def _echo_server(nursery: trio.Nursery) -> int:
    async def handler(stream: trio.SocketStream) -> None:
        try:
            while data := await stream.receive_some(256 * 1024):
                await stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    listeners = await nursery.start(trio.serve_tcp, handler, 0)
    return listeners[0].socket.getsockname()[1]


async def _round_trips(stream: trio.SocketStream, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        with trio.fail_after(BOUND):
            await stream.send_all(b"x" * 64)
            got = 0
            while got < 64:
                got += len(await stream.receive_some(64 - got))
        samples.append(time.perf_counter() - start)
    return samples


async def _pump_through(stream: trio.SocketStream, total: int) -> float:
    """Bytes/s echoing `total` bytes (writer and reader concurrently)."""
    block = b"\0" * (256 * 1024)
    start = time.perf_counter()

    async def write() -> None:
        sent = 0
        while sent < total:
            await stream.send_all(block)
            sent += len(block)

    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write)
            got = 0
            while got < total:
                got += len(await stream.receive_some(1024 * 1024))
    return total / (time.perf_counter() - start)


@asynccontextmanager
async def _proxy_process(upstream_port: int) -> AsyncIterator[tuple[int, int]]:
    """`statemodel proxy` (no faults, no byte trace) in its own process, as it is deployed;
    yields its (port, pid) and terminates it (by its own pid) afterwards."""
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "statemodel", "proxy", "--upstream", f"{HOST}:{upstream_port}"],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        line = b""
        with trio.fail_after(BOUND):
            while not line.endswith(b"\n"):
                chunk = await proc.stdout.receive_some(1024)
                if not chunk:
                    raise RuntimeError(f"statemodel proxy exited before listening: {line!r}")
                line += chunk
        # "proxy listening on 127.0.0.1:PORT -> ..."
        yield int(line.split(b" -> ")[0].rsplit(b":", 1)[1]), proc.pid
    finally:
        proc.terminate()
        with trio.move_on_after(5):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stdout.aclose()


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


async def _measure_path(port: int, round_trips: int, total: int) -> tuple[list[float], float]:
    stream = await trio.open_tcp_stream(HOST, port)
    stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
    try:
        await _round_trips(stream, 10)  # warm up
        return await _round_trips(stream, round_trips), await _pump_through(stream, total)
    finally:
        await stream.aclose()


async def proxy_overhead(round_trips: int, total: int, rounds: int = 3) -> dict[str, Any]:
    """Round-trip latency and echo throughput, direct vs through the fault proxy with no faults.

    The figure uses the proxy in its own process (how ``statemodel proxy`` and Toxiproxy are
    deployed); the in-process proxy, sharing one thread with client and echo server, is
    reported beside it. Direct and proxied runs alternate ``rounds`` times; medians are kept."""
    runs: dict[str, list[tuple[list[float], float]]] = {"direct": [], "proxy": [], "in_process": []}
    cpu = {"wall": 0.0, "bench": 0.0, "proxy": 0.0}
    async with trio.open_nursery() as nursery:
        port = await _echo_server(nursery)
        inproc = FaultProxy(upstream=(HOST, port), record_bytes=False)
        async with inproc.running(), _proxy_process(port) as (proxy_port, proxy_pid):
            for _ in range(rounds):
                for name, target_port in (("direct", port), ("proxy", proxy_port), ("in_process", inproc.port)):
                    before = time.perf_counter(), time.process_time(), _cpu_seconds(proxy_pid)
                    runs[name].append(await _measure_path(target_port, round_trips, total))
                    after = time.perf_counter(), time.process_time(), _cpu_seconds(proxy_pid)
                    if name == "proxy":  # where the time goes: wall vs CPU of each process
                        cpu["wall"] += after[0] - before[0]
                        cpu["bench"] += after[1] - before[1]
                        if before[2] is not None and after[2] is not None:
                            cpu["proxy"] += after[2] - before[2]
        nursery.cancel_scope.cancel()
    med = {name: (statistics.median(x for r in rs for x in r[0]), statistics.median(r[1] for r in rs))
           for name, rs in runs.items()}
    (d_rtt, d_rate), (p_rtt, p_rate), (i_rtt, i_rate) = med["direct"], med["proxy"], med["in_process"]
    return {
        "direct_rtt_p50_s": d_rtt,
        "proxy_rtt_p50_s": p_rtt,
        "added_rtt_p50_s": p_rtt - d_rtt,
        "direct_bytes_per_s": d_rate,
        "proxy_bytes_per_s": p_rate,
        "throughput_ratio": p_rate / d_rate,
        "in_process_added_rtt_p50_s": i_rtt - d_rtt,
        "in_process_throughput_ratio": i_rate / d_rate,
        # proxied runs: the proxy process's CPU and ours beside the wall time they took; a
        # sum well below the wall time means both waited for a CPU (a contended host)
        "proxied_wall_s": cpu["wall"], "proxied_bench_cpu_s": cpu["bench"], "proxied_proxy_cpu_s": cpu["proxy"],
        "rounds": rounds,
    }


# ---- all of it ---------------------------------------------------------------------------
def run_all(quick: bool) -> dict[str, Any]:
    """Every loopback figure, anchors interleaved with the measured side in one process."""
    n_conn = 20 if quick else 300
    size = 2 * MiB

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        back_to_back = await raw_connect_close(n_conn)
        side = await reconnect_side_by_side(n_conn)
        raw, resume = side["raw"], side["resume"]
        out["reconnect"] = {
            # the anchor: raw connect+close after the same idle pause as each cut
            "raw_connect_close_p50_s": statistics.median(raw),
            "raw_connect_close_p99_s": percentile(raw, 99),
            "raw_back_to_back_p50_s": statistics.median(back_to_back),  # the anchor until session 6
            "idle_before_each_s": _healthy_quickly(Config()).healthy_after,
            "resume_p50_s": statistics.median(resume),
            "resume_p99_s": percentile(resume, 99),
            "samples": n_conn,
        }
        pinned = pin_malloc()
        out["throughput"] = {**await throughput_side_by_side(size, 5 if quick else 61), "malloc_pinned": pinned}
        out["proxy"] = await proxy_overhead(100 if quick else 1000, (16 if quick else 128) * MiB, 1 if quick else 3)
        return out

    return trio.run(main)


if __name__ == "__main__":
    print(json.dumps(run_all(quick=True), indent=2))
