"""Rogue peers, over any dial function, against any server speaking the protocol.

``forge_resume`` knows a victim's session id (ids are not secret) but not its token: it
learns the server's epoch from a session of its own, then tries to resume the victim's
session with a forged token. PROTOCOL.md §7: the server must close with 4003 and change
nothing else.

``take_over`` holds the real token -- the client's own previous connection lingering after
a network handover, or a second tab -- and resumes the session beside the live client.
PROTOCOL.md §7.3: each newer connection fences the older one with 4006.
"""

from __future__ import annotations

import json

import trio
from trio_websocket import ConnectionClosed, wrap_client_stream

from statemodel.stream.frames import Frame, decode, encode

FORGED_TOKEN_CODE = 4003
SUPERSEDED_CODE = 4006


async def _exchange(dial, hello: dict, timeout: float) -> tuple[str, object]:
    """Send one hello; return ("welcome", header) or ("closed", code) or ("timeout", None)."""
    stream = None
    try:
        with trio.move_on_after(timeout):
            stream = await dial()  # a partition stalls connect like a lost SYN: bounded too
            async with trio.open_nursery() as nursery:
                ws = await wrap_client_stream(nursery, stream, "statemodel", "/", max_message_size=2**21)
                try:
                    await ws.send_message(encode(Frame("hello", hello)))
                    while True:
                        frame = decode(await ws.get_message(), max_frame_size=2**21)
                        if frame.t == "welcome":
                            return "welcome", frame.h
                except ConnectionClosed as exc:
                    return "closed", exc.reason.code
                finally:
                    nursery.cancel_scope.cancel()
        return "timeout", None
    except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        return "closed", repr(exc)
    finally:
        if stream is not None:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)


async def forge_resume(dial, victim_session: str, timeout: float) -> tuple[str, object]:
    """Try to take over ``victim_session`` with a forged token; say what the server did."""
    kind, header = await _exchange(dial, {"v": 1}, timeout)
    if kind != "welcome":
        return "inconclusive", f"could not learn the epoch ({kind} {header})"
    forged = {
        "v": 1,
        "resume": {"session": victim_session, "token": "forged-" + "0" * 36, "epoch": header["epoch"], "recv": {}},
    }
    kind, detail = await _exchange(dial, forged, timeout)
    if kind == "welcome" and detail.get("session") == victim_session:
        return "accepted", json.dumps({k: detail.get(k) for k in ("session", "outcome")})
    if kind == "welcome":  # the victim's session is gone (restart, expiry): a fresh one is fine
        return "fresh_session", detail.get("reason")
    if kind == "closed":
        return "refused", detail
    return "inconclusive", kind


async def take_over(dial, resume: dict, timeout: float, on_welcome=None) -> tuple[str, object]:
    """Resume a session with its real ``resume`` position and token, answer the server's
    pings (so it stays alive like a real lingering connection), drop everything else, and
    return how this connection ended: ("fenced"/"closed", code), ("open", None) at
    ``timeout``, ("refused", detail) without a welcome, or ("reset", reason) when the session
    was gone. ``on_welcome()`` runs once the server has accepted the resume. Never acks
    data: what the server sends here stays owed to the client."""
    stream = None
    try:
        with trio.move_on_after(timeout):
            stream = await dial()
            async with trio.open_nursery() as nursery:
                ws = await wrap_client_stream(nursery, stream, "statemodel", "/", max_message_size=2**22)
                try:
                    await ws.send_message(encode(Frame("hello", {"v": 1, "resume": resume})))
                    frame = decode(await ws.get_message(), max_frame_size=2**22)
                    if frame.t != "welcome":
                        return "refused", frame.t
                    if frame.h.get("session") != resume["session"]:
                        return "reset", frame.h.get("reason")
                    if on_welcome is not None:
                        on_welcome()
                    while True:
                        frame = decode(await ws.get_message(), max_frame_size=2**22)
                        if frame.t == "ping":
                            await ws.send_message(encode(Frame("pong", {"a": {}})))
                except ConnectionClosed as exc:
                    code = exc.reason.code
                    return ("fenced" if code == SUPERSEDED_CODE else "closed"), code
                finally:
                    nursery.cancel_scope.cancel()
        return ("open", None) if stream is not None else ("refused", "connect timed out")
    except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        return "closed", repr(exc)
    finally:
        if stream is not None:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)
