"""run_link's writer: a send that blocks longer than send_timeout ends the connection as a
dead peer; sends that finish in time, however many and however far apart, do not."""

from __future__ import annotations

import trio
import trio.testing

from statemodel.stream.config import Config
from statemodel.stream.errors import CloseCode
from statemodel.stream.protocol import Link
from statemodel.stream.wslink import Notifier, run_link

CFG = Config(send_timeout=3.0)


class Wire:
    """A WebSocket whose sends take ``delays`` seconds each in turn (then forever)."""

    def __init__(self, delays) -> None:
        self.delays = list(delays)
        self.sent: list[tuple[float, bytes]] = []
        self.closed: tuple | None = None

    async def send_message(self, data) -> None:
        await trio.sleep(self.delays.pop(0) if self.delays else float("inf"))
        self.sent.append((trio.current_time(), data))

    async def get_message(self):
        await trio.sleep_forever()

    async def aclose(self, code, reason) -> None:
        self.closed = (code, reason)


async def _run(wire: Wire, batches) -> tuple:
    """Queue each (at, frames) batch at virtual time ``at``; run the link until it ends."""
    link = Link(CFG, 0.0)
    changed = Notifier()

    async def feed():
        for at, frames in batches:
            await trio.sleep_until(at)
            link.outbox.extend(frames)
            changed.notify()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed)
        result = await run_link(wire, link, CFG, changed, lambda m, t: None, lambda: float("inf"),
                                lambda t: None, lambda e: None)
        nursery.cancel_scope.cancel()
    return result, link.close, trio.current_time()


def test_a_send_blocked_past_send_timeout_closes_as_a_dead_peer():
    # Three sends of 2.9 s each (each within its own bound), an idle minute, then one that blocks.
    wire = Wire([2.9, 2.9, 2.9])
    result, close, ended = trio.run(_run, wire, [(0.0, [b"a", b"b"]), (1.0, [b"c"]), (70.0, [b"d"])],
                             clock=trio.testing.MockClock(autojump_threshold=0))
    assert [data for _, data in wire.sent] == [b"a", b"b", b"c"]
    assert close == (int(CloseCode.PEER_DEAD), "a send blocked for 3.0s")
    assert result == (int(CloseCode.PEER_DEAD), "send timed out")
    assert ended == 73.0  # the last send's bound, not one armed earlier and left running while idle
