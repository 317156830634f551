"""Process-level pressure on the reference server in a child process (real loopback TCP):
running it out of file descriptors must not end it, and connections before hello hold no
more memory than documented. Verdicts are counts and bytes, never timings."""

from __future__ import annotations

import subprocess
import sys

import psutil
import trio

from statemodel.hostile import bounds
from statemodel.soak.pressure import fd_exhaustion, honest_request, limit_fds, prehello_frames
from statemodel.stream.config import Config

MiB = 1 << 20
NOFILE = 64  # the child's RLIMIT_NOFILE: a few connections past its baseline use it up
RSS_NOISE_MIB = 16  # allocator and import noise a child may show on top of a budget


async def _server(nofile: int | None = None) -> tuple[trio.Process, int]:
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "statemodel.soak.server", "--port", "0", "--interval", "3600"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=limit_fds(nofile) if nofile else None)
    line = b""
    with trio.fail_after(30):
        while not line.endswith(b"\n"):
            line += await proc.stdout.receive_some(1)
    return proc, int(line.split()[1])


async def _stderr(proc: trio.Process) -> str:
    with trio.move_on_after(1):
        return (await proc.stderr.receive_some(1 << 20)).decode(errors="replace")[-800:]
    return ""


def test_server_outlives_running_out_of_file_descriptors():
    """More idle connections than the process may open fds: accept fails with EMFILE; the
    server must keep going (issue 12: `serve` exited 2) and serve an honest client after."""
    async def main():
        proc, port = await _server(NOFILE)
        try:
            seen = await fd_exhaustion("127.0.0.1", port, NOFILE + 32, hold=1.0)
            await trio.sleep(0.5)
            assert proc.poll() is None, f"the server exited ({proc.returncode}) under fd pressure: {await _stderr(proc)}"
            assert await honest_request("127.0.0.1", port) >= 0
            assert proc.poll() is None
            return seen
        finally:
            proc.terminate()
            await proc.wait()

    seen = trio.run(main)
    assert seen.connected > NOFILE // 2, seen  # the pressure was real


def test_prehello_frames_hold_no_more_memory_than_documented():
    """Connections that send most of a max_frame_size frame and never a hello: the server's
    RSS may grow by its documented pre-hello budget, not by a frame per connection (issue
    12: 300 of them pinned +321 MiB)."""
    config = Config()
    count = 64  # x 1 MiB: far above any budget, far below the machine

    async def main():
        proc, port = await _server()
        p = psutil.Process(proc.pid)
        try:
            await honest_request("127.0.0.1", port)  # warm: imports and first-session allocations
            base, peak = p.memory_info().rss, 0
            async with trio.open_nursery() as nursery:
                nursery.start_soon(prehello_frames, "127.0.0.1", port, count, config.max_frame_size, 2.0)
                while nursery.child_tasks:
                    await trio.sleep(0.1)
                    peak = max(peak, p.memory_info().rss)
            assert proc.poll() is None, await _stderr(proc)
            await honest_request("127.0.0.1", port)
            return peak - base
        finally:
            proc.terminate()
            await proc.wait()

    grew = trio.run(main)
    budget = bounds.prehello_bytes(config) + RSS_NOISE_MIB * MiB
    assert grew <= budget, (f"RSS grew {grew / MiB:.1f} MiB with {count} pre-hello frames in progress; "
                            f"budget {bounds.prehello_bytes(config) / MiB:.1f} MiB + {RSS_NOISE_MIB} MiB noise")
