"""The memory benchmark's cut is exact, not load-dependent (issue 13 item 9).

`test_bench_quick` once failed under load with `assert 19 >= 2 * 10` on the connects: a
client whose budget was below its response size read the rest of the response in one big
read (bytes pile up in the kernel when the machine is slow) and was never cut. The cut now
never reads past the budget, so every such client is cut mid-message on any machine.
"""

from __future__ import annotations

import trio

from statemodel.bench.memory import CutAfter


async def _pair(payload: bytes):
    a, b = trio.socket.socketpair()
    left, right = trio.SocketStream(a), trio.SocketStream(b)
    await left.send_all(payload)
    await trio.sleep(0)
    return left, right


def test_a_cut_client_never_reads_past_its_budget_even_when_everything_is_there():
    async def main():
        left, right = await _pair(b"x" * 50_000)  # the whole response already buffered
        cut = CutAfter(right, budget=10_000)
        got = 0
        with trio.fail_after(10):
            while True:
                try:
                    data = await cut.receive_some()
                except trio.BrokenResourceError:
                    break
                assert data, "the response ended before the cut"
                got += len(data)
        await left.aclose()
        return got

    assert trio.run(main) == 10_000  # exactly the budget, then the cut


def test_without_a_budget_nothing_is_cut():
    async def main():
        left, right = await _pair(b"y" * 3000)
        await left.send_eof()
        cut = CutAfter(right, budget=None)
        got = b""
        with trio.fail_after(10):
            while data := await cut.receive_some(1000):
                got += data
        await left.aclose()
        await cut.aclose()
        return got

    assert trio.run(main) == b"y" * 3000
