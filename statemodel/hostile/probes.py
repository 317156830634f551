"""Probes: send one drawn piece of hostile input, then judge what the server did.

The grammar (`grammar.py`) draws the input; a probe knows nothing of the server's code and
judges only what PROTOCOL.md promises any server does:

- `frame_probe`: any frame at any phase is either taken (the connection still answers a
  ``ping`` with a ``pong``) or answered with a documented close code (§10). A transport that
  just ends (a crashed handler), no answer at all, or a session kept after a *final* code
  (a resume still ``recovered``) is a failure.
- `ws_probe`: WebSocket-layer garbage gets a close frame with the RFC 6455 code (1002, or
  1007 for invalid UTF-8) and ends the session.
- `command_probe`: an app command, however hostile, ends its stream with a sequenced ``end``
  or ``error`` item; the connection stays up; no message above ``max_message_size`` comes.
- `resume_probe`: a resume the server rejects changes nothing: the next honest resume is
  ``recovered`` and replays from where the client really was.

Each returns a `Verdict` (expected vs observed), like every attack.
"""

from __future__ import annotations

import json
from typing import Any

import trio

from statemodel.stream.errors import CloseCode as C
from statemodel.stream.errors import ProtocolError
from statemodel.stream.frames import Frame, decode

from .grammar import HostileFrame, Obj, render
from .peer import raw_frame
from .verdict import DROPPED, TIMEOUT, AttackContext, Verdict
from .wire import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, Wire, close_payload

ALIVE = "alive"  # the connection took the input and still answers a ping
WS_PROTOCOL_ERROR, WS_INVALID_DATA, WS_TOO_BIG = C.WS_PROTOCOL_ERROR, C.WS_INVALID_DATA, C.WS_MESSAGE_TOO_BIG
#: Close codes that end the session at once (PROTOCOL.md §10: bad input is final).
FINAL = frozenset({C.MALFORMED_FRAME, C.UNSUPPORTED_VERSION, C.PROTOCOL_VIOLATION, C.FRAME_TOO_LARGE,
                   C.MESSAGE_TOO_LARGE, WS_PROTOCOL_ERROR, WS_INVALID_DATA, WS_TOO_BIG})
#: Every documented answer to input a server refuses (§10), final or not: 4003 and 4009, and
#: 1013 for a server shedding a shared resource (unfinished messages, pre-hello slots).
REFUSALS = tuple(sorted(FINAL | {C.FORGED_TOKEN, C.SERVER_BUSY, C.TRY_AGAIN_LATER}))
PING = raw_frame({"t": "ping", "a": {}})


def new_mask(ctx: AttackContext) -> bytes:
    return ctx.rng.randbytes(4)


def _frame(msg: bytes) -> Frame | None:
    try:
        return decode(msg, max_frame_size=1 << 30, max_header_size=1 << 30)
    except ProtocolError:
        return None


async def send_quietly(send) -> bool:
    """Send; False if the server already ended the transport (its close is read next)."""
    try:
        await send()
        return True
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        return False


async def ping_answer(wire: Wire) -> int | str:
    """After a ``ping``: ALIVE once the pong comes, else how the server ended us."""
    with trio.move_on_after(wire.timeout):
        try:
            while True:
                msg = await wire.receive_message()
                if msg is None:
                    return wire.close_code
                f = _frame(msg)
                if f is not None and f.t == "pong":
                    return ALIVE
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return DROPPED
        except trio.TooSlowError:
            pass
    return TIMEOUT


async def say_bye(wire: Wire) -> None:
    """Leave politely (1000 ends our session on a PROTOCOL.md server, freeing its slot)."""
    await send_quietly(lambda: wire.send(OP_CLOSE, close_payload(1000)))
    with trio.move_on_after(wire.timeout):
        await wire.wait_closed()
    await wire.aclose()


async def _session_kept(ctx: AttackContext, welcome: dict[str, Any]) -> bool:
    """Whether a resume of this session still recovers it (it must not, after a final code)."""
    wire = await Wire.open(ctx.dial, ctx.timeout, new_mask(ctx))
    try:
        resume = {"session": welcome["session"], "token": welcome["token"], "epoch": welcome["epoch"], "recv": {}}
        got = await wire.hello(resume)
        kept = got is not None and got.get("session") == welcome["session"] and got.get("outcome") == "recovered"
        await say_bye(wire)
        return kept
    finally:
        await wire.aclose()


async def _judge_close(ctx, name, expected, code, welcome, detail="") -> Verdict:
    if code in FINAL and welcome is not None and await _session_kept(ctx, welcome):
        return Verdict(name, expected, f"{code}, session kept",
                       detail=f"closed {code} for bad input but a resume still recovers the session (§10: final) {detail}")
    return Verdict(name, expected, code, detail=detail)


async def frame_probe(ctx: AttackContext, phase: str, frame: HostileFrame, ws_ping: bool = False) -> Verdict:
    """Send ``frame`` at ``phase``, then a ping: a pong or a documented close code.

    With ``ws_ping`` a WebSocket-level ping follows the frame, as keep-alive pings of
    browsers and client libraries do: if the server is closing by then, the ping arrives
    while it waits for our close reply (trio-websocket's #184 crashed the server's reader
    there and logged a traceback per connection)."""
    name, expected = "hostile_frame", (ALIVE,) + REFUSALS
    detail = f"{phase} {frame.type}"
    wire = await Wire.open(ctx.dial, ctx.timeout, new_mask(ctx))
    try:
        welcome = None
        if phase != "pre_hello":
            welcome = await wire.hello()
            if welcome is None:
                return Verdict(name, expected, wire.close_code, detail="hello refused")
        if phase == "stream":
            await wire.send_message(raw_frame({"t": "open", "s": 1, "q": 1, "k": "t"}, b'{"op":"emit","chunks":[]}'))
        data = frame.encode(ctx.limits)
        if await send_quietly(lambda: wire.send_message(data)):
            if ws_ping:
                await send_quietly(lambda: wire.send(OP_PING, b"keep-alive"))
            await send_quietly(lambda: wire.send_message(PING))
        answer = await ping_answer(wire)
        if welcome is None:  # the frame may have been a hello the server took
            welcome = next((f.h for f in map(_frame, wire.messages) if f is not None and f.t == "welcome"), None)
        if answer == ALIVE:
            await say_bye(wire)
            return Verdict(name, expected, ALIVE, detail=detail)
        return await _judge_close(ctx, name, expected, answer, welcome, detail)
    finally:
        await wire.aclose()


#: WebSocket-layer garbage (RFC 6455): name -> (how to send it, the close code it must get).
WS_GARBAGE: dict[str, tuple[Any, int]] = {
    "text_invalid_utf8": (lambda w: w.send(OP_TEXT, b"\xce\xbb\xff\xfe"), WS_INVALID_DATA),
    "close_reason_invalid_utf8": (lambda w: w.send(OP_CLOSE, close_payload(1000, b"\xff")), WS_INVALID_DATA),
    "close_code_reserved": (lambda w: w.send(OP_CLOSE, close_payload(1005)), WS_PROTOCOL_ERROR),
    "close_code_out_of_range": (lambda w: w.send(OP_CLOSE, close_payload(999)), WS_PROTOCOL_ERROR),
    "close_one_byte": (lambda w: w.send(OP_CLOSE, b"\x03"), WS_PROTOCOL_ERROR),
    "reserved_opcode": (lambda w: w.send(0x3, b"x"), WS_PROTOCOL_ERROR),
    "reserved_control_opcode": (lambda w: w.send(0xB, b""), WS_PROTOCOL_ERROR),
    "rsv_bits": (lambda w: w.send(OP_BINARY, b"x", rsv=4), WS_PROTOCOL_ERROR),
    "unmasked": (lambda w: w.send(OP_BINARY, PING, mask=None), WS_PROTOCOL_ERROR),
    "control_over_125": (lambda w: w.send(OP_PING, b"p" * 126), WS_PROTOCOL_ERROR),
    "fragmented_control": (lambda w: w.send(OP_PING, b"p", fin=False), WS_PROTOCOL_ERROR),
    "stray_continuation": (lambda w: w.send(OP_CONT, b"x"), WS_PROTOCOL_ERROR),
    "interleaved_data": (lambda w: _interleaved(w), WS_PROTOCOL_ERROR),
}


async def _interleaved(wire: Wire) -> None:
    await wire.send(OP_BINARY, b"\x00\x00", fin=False)
    await wire.send(OP_BINARY, b"\x00\x00")  # a new message before the last one finished


async def ws_probe(ctx: AttackContext, kind: str, phase: str = "established") -> Verdict:
    """WebSocket-layer garbage: the documented close frame, and the session ends."""
    send, code = WS_GARBAGE[kind]
    name, expected = f"ws_{kind}", (code,)
    wire = await Wire.open(ctx.dial, ctx.timeout, new_mask(ctx))
    try:
        welcome = None
        if phase != "pre_hello":
            welcome = await wire.hello()
            if welcome is None:
                return Verdict(name, expected, wire.close_code, detail="hello refused")
        await send_quietly(lambda: send(wire))
        answer = await wire.wait_closed()
        return await _judge_close(ctx, name, expected, answer, welcome, f"{phase}")
    finally:
        await wire.aclose()


async def command_probe(ctx: AttackContext, command: Any) -> Verdict:
    """Open a stream whose command is ``command`` (then ask it to end): the stream must end
    with a sequenced ``end``/``error``, every message within ``max_message_size``, and the
    connection must still answer a ping."""
    name, expected = "hostile_command", ("end", "error")
    wire = await Wire.open(ctx.dial, ctx.timeout, new_mask(ctx))
    try:
        welcome = await wire.hello()
        if welcome is None:
            return Verdict(name, expected, wire.close_code, detail="hello refused")
        payload = render(command, ctx.limits).encode("utf-8", "surrogatepass")
        opened = raw_frame({"t": "open", "s": 1, "q": 1, "k": "t"}, payload)
        if len(opened) > ctx.limits.max_frame_size:  # the command does not fit in a frame (§2)
            too_big = (C.FRAME_TOO_LARGE, WS_TOO_BIG)
            await send_quietly(lambda: wire.send_message(opened))
            return await _judge_close(ctx, name, too_big, await wire.wait_closed(), welcome,
                                      f"an open frame of {len(opened)} bytes")
        await wire.send_message(opened)
        await wire.send_message(raw_frame({"t": "data", "s": 1, "q": 2, "fin": True, "k": "t"}, b'{"op":"end"}'))
        size, outcome = 0, None
        with trio.move_on_after(ctx.timeout * 4):
            try:
                while outcome is None:
                    msg = await wire.receive_message()
                    if msg is None:
                        outcome = wire.close_code
                        break
                    f = _frame(msg)
                    if f is None:
                        return Verdict(name, expected, "bad_server_frame", breach="the server sent an undecodable frame")
                    if f.t in ("data", "end", "error", "ctx"):  # ack at once, as an honest client does
                        await wire.send_message(raw_frame({"t": "ack", "a": {str(f.h["s"]): f.h["q"]}}))
                    if f.h.get("s") != 1:
                        continue
                    if f.t == "data":
                        size += len(f.payload)
                        if size > ctx.limits.max_message_size:
                            return Verdict(name, expected, "message_above_limit",
                                           detail=f"a message past {size} bytes > max_message_size "
                                                  f"{ctx.limits.max_message_size} (a client must close 4005)")
                        if f.h.get("fin"):
                            size = 0
                    elif f.t in ("end", "error"):
                        outcome = f.t
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                outcome = DROPPED
        if outcome is None:
            return Verdict(name, expected, TIMEOUT, detail="the stream never ended")
        if outcome in expected:
            await send_quietly(lambda: wire.send_message(PING))
            answer = await ping_answer(wire)
            if answer != ALIVE:
                return Verdict(name, expected, f"{outcome}, then {answer}", detail="connection lost after the stream ended")
            await say_bye(wire)
        return Verdict(name, expected, outcome)
    finally:
        await wire.aclose()


async def resume_probe(ctx: AttackContext, recv: Any, items: int = 3) -> Verdict:
    """A resume of our own session with a hostile ``recv`` (the server sent ``items`` items
    on stream 1, none acked). Taken: nothing to check. Refused: a resume with the true
    position (nothing received) must recover and replay stream 1 from seq 1."""
    name, expected = "rejected_resume", ("accepted", "unchanged")
    command = {"op": "emit", "chunks": [{"kind": "json", "value": i} for i in range(items - 1)]}
    first = await Wire.open(ctx.dial, ctx.timeout, new_mask(ctx))
    try:
        welcome = await first.hello()
        if welcome is None:
            return Verdict(name, expected, first.close_code, detail="hello refused")
        await first.send_message(raw_frame({"t": "open", "s": 1, "q": 1, "k": "t"}, json.dumps(command).encode()))
        await first.send_message(raw_frame({"t": "data", "s": 1, "q": 2, "fin": True, "k": "t"}, b'{"op":"end"}'))
        seqs = await _stream_seqs(first, until_end=True)
    finally:
        await first.aclose()  # dropped, not closed: the session waits for a resume
    position = {"session": welcome["session"], "token": welcome["token"], "epoch": welcome["epoch"]}
    hostile = Obj(tuple((k, v) for k, v in position.items()) + (("recv", recv),))
    second = await Wire.open(ctx.dial, ctx.timeout, new_mask(ctx))
    try:
        await second.send_message(_hello_bytes(hostile, ctx))
        got = None
        while got is None:
            msg = await second.receive_message()
            if msg is None:
                break
            f = _frame(msg)
            if f is not None and f.t == "welcome":
                got = f.h
        if got is not None:
            await say_bye(second)
            return Verdict(name, expected, "accepted", detail=f"outcome {got.get('outcome')}")
        refused = second.close_code
    finally:
        await second.aclose()
    third = await Wire.open(ctx.dial, ctx.timeout, new_mask(ctx))
    try:
        got = await third.hello({**position, "recv": {}})
        if got is None:
            return Verdict(name, expected, f"refused {refused}, then resume closed {third.close_code}")
        if got.get("outcome") != "recovered":
            return Verdict(name, expected, f"refused {refused}, then {got.get('outcome')}: {got.get('reason')}",
                           detail="a rejected resume ended or changed the session")
        replay = await _stream_seqs(third, until_end=True)
        await say_bye(third)
        if replay != seqs:
            return Verdict(name, expected, f"refused {refused}, then replay of seqs {replay}",
                           detail=f"expected the whole stream again, seqs {seqs}: the rejected resume's acks were applied")
        return Verdict(name, expected, "unchanged", detail=f"refused {refused}")
    finally:
        await third.aclose()


def _hello_bytes(resume: Obj, ctx: AttackContext) -> bytes:
    return HostileFrame(Obj((("t", "hello"), ("v", 1), ("resume", resume)))).encode(ctx.limits)


async def _stream_seqs(wire: Wire, *, until_end: bool) -> list[int]:
    """Sequence numbers of stream 1's items, read (never acked) until its ``end``."""
    seqs: list[int] = []
    while True:
        msg = await wire.receive_message()
        if msg is None:
            return seqs
        f = _frame(msg)
        if f is None or f.h.get("s") != 1 or f.t not in ("data", "end", "error"):
            continue
        seqs.append(f.h["q"])
        if until_end and f.t in ("end", "error"):
            return seqs
