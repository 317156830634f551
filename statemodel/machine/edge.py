"""A resume timed to the millisecond: the expiry and eviction boundaries, probed exactly.

On virtual time the machine knows when the reference server will expire a disconnected
session (``disconnected_at + session_ttl``) or age out its oldest unacknowledged item
(``t + replay_max_age``). ``resume_at`` opens a connection early and sends the session's
real resume ``hello`` so that it reaches the server at a chosen instant, one tick either side
of such a deadline, then returns the welcome. PROTOCOL.md §6 and §9 say what the answer
must be on each side; at the deadline itself either answer is allowed.
"""

from __future__ import annotations

import trio
from trio_websocket import ConnectionClosed, wrap_client_stream

from statemodel.stream.frames import Frame, decode, encode

TICK = 0.001  # seconds: the resolution the boundary is probed at
OPEN_AHEAD = 0.1  # seconds before the instant the connection is opened (handshake done by then)


async def resume_at(dial, resume: dict, arrive_at: float, one_way: float, timeout: float) -> dict | None:
    """Open a connection with ``dial`` ahead of time, send ``hello`` with ``resume`` so that it
    arrives at ``arrive_at`` (``one_way``: the link's fixed latency), and return the welcome's
    header (None if the server closed or answered nothing within ``timeout``). The connection
    is closed right after: it neither acks nor reads anything else."""
    await trio.sleep_until(max(trio.current_time(), arrive_at - OPEN_AHEAD))
    with trio.move_on_after(OPEN_AHEAD + timeout):
        stream = await dial()
        try:
            async with trio.open_nursery() as nursery:
                ws = await wrap_client_stream(nursery, stream, "statemodel", "/")
                await trio.sleep_until(max(trio.current_time(), arrive_at - one_way))
                try:
                    await ws.send_message(encode(Frame("hello", {"v": 1, "resume": resume})))
                    frame = decode(await ws.get_message(), max_frame_size=1 << 22)
                except ConnectionClosed:
                    return None
                finally:
                    nursery.cancel_scope.cancel()
                return frame.h if frame.t == "welcome" else None
        finally:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)
    return None
