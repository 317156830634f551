"""Resource attacks: peers that hold server memory, fds and buffers rather than break rules.

Each is legal frame by frame; together they test the bounds (PROTOCOL.md §9, SECURITY.md):

- `partial_flood`: many streams, each with fragments of one message and never its ``fin``.
- `prehello_flood`: connections that never finish the handshake -- half an HTTP upgrade then
  gone, a WebSocket that never says hello, or a large frame left in progress before hello.
- `never_reading`: several sessions at once that ask for megabytes and never read or ack.

An attack alone sees only what the wire shows (the documented answer, or that the server
still serves); the memory, fd and fairness bounds are judged by whoever runs it with a view
of the server: `HostileMachine` (sim, exact) or `statemodel soak` (psutil, real time).
"""

from __future__ import annotations

import trio

from .peer import raw_frame
from .probes import ALIVE, PING, REFUSALS, new_mask, ping_answer, say_bye, send_quietly
from .verdict import TIMEOUT, AttackContext, Verdict
from .wire import OP_BINARY, UPGRADE, Wire, ws_frame

HEADER_ROOM = 1024  # bytes left in a frame for its JSON header


async def partial_flood(ctx: AttackContext, streams: int = 16, per_stream: int | None = None,
                        leave: str = "drop") -> Verdict:
    """Open ``streams`` streams and send each ``per_stream`` bytes (default: one byte short
    of ``max_message_size``, each message legal on its own) of one message without ``fin``
    (frames of ``max_frame_size``), then drop the connection (``leave="drop"``) or close it
    (1000). The server may take it all (it must then hold it within its bounds) or refuse
    with a documented code; it must still answer a ping after every stream's fragments."""
    name, expected = "partial_flood", (ALIVE,) + REFUSALS
    lim = ctx.limits
    per_stream = lim.max_message_size - 1 if per_stream is None else per_stream
    piece = max(1, min(per_stream, lim.max_frame_size - HEADER_ROOM))
    streams = max(1, min(streams, lim.max_streams_per_session))
    wire = await Wire.open(ctx.dial, ctx.timeout, new_mask(ctx))
    try:
        if await wire.hello() is None:
            return Verdict(name, expected, wire.close_code, detail="hello refused")
        answer: int | str = ALIVE
        for sid in range(1, streams + 1):
            sent, q = 0, 2
            opened = raw_frame({"t": "open", "s": sid, "q": 1, "k": "t"}, b'{"op":"emit","chunks":[]}')
            if not await send_quietly(lambda: wire.send_message(opened)):
                break
            while sent < per_stream:
                n = min(piece, per_stream - sent)
                frame = raw_frame({"t": "data", "s": sid, "q": q, "fin": False, "k": "b"}, bytes(n))
                if not await send_quietly(lambda: wire.send_message(frame)):
                    break
                sent, q = sent + n, q + 1
            if not await send_quietly(lambda: wire.send_message(PING)):
                answer = await wire.wait_closed()
                break
            answer = await ping_answer(wire)
            if answer != ALIVE:
                break
        detail = f"{streams} streams x {per_stream} bytes without fin, then {leave}"
        if answer == ALIVE and leave == "close":
            await say_bye(wire)
        return Verdict(name, expected, answer, detail=detail)
    finally:
        await wire.aclose()


#: The three ways to hold a connection before hello.
PREHELLO_KINDS = ("half_upgrade", "silent_websocket", "frame_in_progress")


async def _prehello_peer(ctx: AttackContext, kind: str, hold: float, outcome: list) -> None:
    """One pre-hello peer: misbehave, hold for ``hold`` seconds (or until the server ends
    us), then go away. Appends what the server did: "dropped", its close code, or "held"
    ("left" for a half upgrade: that peer leaves at once, and only the server's own
    counts can tell whether it let go of the connection)."""
    if kind == "half_upgrade":  # half the upgrade request, then gone: the peer holds nothing
        with trio.fail_after(ctx.timeout):
            stream = await ctx.dial()
        try:
            await send_quietly(lambda: stream.send_all(UPGRADE[: len(UPGRADE) // 2]))
        finally:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)
        outcome.append("left")
        return
    wire = await Wire.open(ctx.dial, ctx.timeout, new_mask(ctx))
    try:
        if kind == "frame_in_progress":  # a frame announcing max_frame_size bytes, one short
            size = ctx.limits.max_frame_size
            head = ws_frame(OP_BINARY, b"", length=size, mask=wire.mask)
            await send_quietly(lambda: wire.send_raw(head + bytes(size - 1)))
        code = await wire.wait_closed(hold)
        outcome.append("held" if code == TIMEOUT else code)
    finally:
        await wire.aclose()


async def prehello_flood(ctx: AttackContext, count: int = 32, kind: str = "frame_in_progress",
                         hold: float | None = None) -> Verdict:
    """``count`` peers of one `PREHELLO_KINDS` at once, each held ``hold`` seconds (default:
    past the handshake timeout) unless the server ends it first. The server must end every
    one of them -- never hold one past ``handshake_timeout`` -- and keep serving (a fresh
    hello afterwards is welcomed)."""
    name, expected = f"prehello_{kind}", ("released",)
    hold = ctx.limits.handshake_timeout * 2 + 1 if hold is None else hold
    outcome: list = []
    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(_prehello_peer_guarded, ctx, kind, hold, outcome)
    held = sum(1 for o in outcome if o == "held")
    wire = await Wire.open(ctx.dial, ctx.timeout, new_mask(ctx))
    try:
        welcome = await wire.hello()
        if welcome is None:
            return Verdict(name, expected, f"not serving: hello closed {wire.close_code}")
        await say_bye(wire)
    finally:
        await wire.aclose()
    counts = {str(o): outcome.count(o) for o in sorted(set(outcome), key=str)}
    if held:
        return Verdict(name, expected, "held", detail=f"{held} of {count} still open after {hold:g}s: {counts}")
    return Verdict(name, expected, "released", detail=str(counts))


async def _prehello_peer_guarded(ctx, kind, hold, outcome) -> None:
    try:
        await _prehello_peer(ctx, kind, hold, outcome)
    except (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
        outcome.append(type(exc).__name__)  # refused at once: the server is shedding load


async def never_reading(ctx: AttackContext, sessions: int = 3, chunks: int = 8, size: int = 256 << 10) -> Verdict:
    """``sessions`` sessions at once each ask for ``chunks`` x ``size`` bytes, then never
    read or ack: each must be cut off (4008, or 1006 where its close frame could not get
    through the unread buffer). Whoever runs this judges the honest sessions beside it."""
    from .attacks import never_acks

    name, expected = "never_reading", ("cut_off",)
    verdicts: list[Verdict] = []

    async def one() -> None:
        verdicts.append(await never_acks(ctx, chunks=chunks, size=size))

    async with trio.open_nursery() as nursery:
        for _ in range(sessions):
            nursery.start_soon(one)
    bad = [v for v in verdicts if not v.ok]
    if bad:
        return Verdict(name, expected, bad[0].observed, detail=f"{len(bad)} of {sessions}: {bad[0]}")
    return Verdict(name, expected, "cut_off", detail=f"{sessions} sessions")


__all__ = ["PREHELLO_KINDS", "never_reading", "partial_flood", "prehello_flood"]
