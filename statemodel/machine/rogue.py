"""Rogue peers, over any dial function, against any server speaking the protocol.

``forge_resume`` knows a victim's session id (ids are not secret) but not its token: it
learns the server's epoch from a session of its own, then tries to resume the victim's
session with a forged token. PROTOCOL.md §7: the server must close with 4003 and change
nothing else.

``take_over`` holds the real token -- the client's own previous connection lingering after
a network handover, or a second tab -- and resumes the session beside the live client.
PROTOCOL.md §7.3: each newer connection fences the older one with 4006.

Neither is on the client's network path, so the machine dials them around the faults meant
for the client's links where the target offers a way (``Target.dial_around``). Whatever
stalls or breaks their own dial is the network's doing, never the server's: it makes the
attempt inconclusive, never a failure. Their waits are bounded on the clock the machine
runs on; given a ``stalled`` meter (the real clock), time the host kept the run off the CPU
does not count against them (target/stall.py).
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager

import trio
from trio_websocket import ConnectionClosed, wrap_client_stream

from statemodel.stream.frames import Frame, decode, encode
from statemodel.target import stall

FORGED_TOKEN_CODE = 4003
SUPERSEDED_CODE = 4006
MAX_MESSAGE = 2**22  # a replayed item is at most max_frame_size plus its header


# What a dial may raise when the network, not the server, is in the way: a refused or reset
# connect, or a connect timeout (a partition stalls a dial through the fault proxy).
DIAL_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError)


@asynccontextmanager
async def _connection(dial, request: tuple[str, str]):
    """A rogue WebSocket over one dialled stream (a partition stalls the dial like a lost
    SYN: callers bound the whole exchange), closed forcefully on the way out. ``request``
    is the (Host header, resource) of the WebSocket handshake."""
    stream = await dial()
    try:
        async with trio.open_nursery() as nursery:
            try:
                yield await wrap_client_stream(nursery, stream, *request, max_message_size=MAX_MESSAGE)
            finally:
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)


async def _exchange(dial, hello: dict, timeout: float, request: tuple[str, str],
                    stalled=None) -> tuple[str, object]:
    """Send one hello; return ("welcome", header) or ("closed", code) or ("timeout", None)."""
    try:
        async with stall.move_on_after(timeout, stalled):
            async with _connection(dial, request) as ws:
                try:
                    await ws.send_message(encode(Frame("hello", hello)))
                    while True:
                        frame = decode(await ws.get_message(), max_frame_size=MAX_MESSAGE)
                        if frame.t == "welcome":
                            return "welcome", frame.h
                except ConnectionClosed as exc:
                    return "closed", exc.reason.code
        return "timeout", None
    except DIAL_ERRORS as exc:
        return "closed", repr(exc)


async def forge_resume(dial, victim_session: str, timeout: float,
                       request: tuple[str, str] = ("statemodel", "/"), stalled=None) -> tuple[str, object]:
    """Try to take over ``victim_session`` with a forged token; say what the server did."""
    kind, header = await _exchange(dial, {"v": 1}, timeout, request, stalled)
    if kind != "welcome":
        return "inconclusive", f"could not learn the epoch ({kind} {header})"
    forged = {
        "v": 1,
        "resume": {"session": victim_session, "token": "forged-" + "0" * 36, "epoch": header["epoch"], "recv": {}},
    }
    kind, detail = await _exchange(dial, forged, timeout, request, stalled)
    if kind == "welcome" and detail.get("session") == victim_session:
        return "accepted", json.dumps({k: detail.get(k) for k in ("session", "outcome")})
    if kind == "welcome":  # the victim's session is gone (restart, expiry): a fresh one is fine
        return "fresh_session", detail.get("reason")
    if kind == "closed":
        return "refused", detail
    return "inconclusive", kind


async def take_over(dial, resume: dict, timeout: float, on_welcome=None,
                    request: tuple[str, str] = ("statemodel", "/"), stalled=None) -> tuple[str, object]:
    """Resume a session with its real ``resume`` position and token, answer the server's
    pings (so it stays alive like a real lingering connection), drop everything else, and
    return how this connection ended: ("fenced"/"closed", code), ("open", None) at
    ``timeout`` (credited with what ``stalled`` reports), ("refused", detail) without a welcome,
    or ("reset", reason) when the session was gone. ``on_welcome()`` runs once the server has
    accepted the resume. Never acks data: what the server sends here stays owed to the client."""
    welcomed = False
    try:
        async with stall.move_on_after(timeout, stalled):
            async with _connection(dial, request) as ws:
                try:
                    await ws.send_message(encode(Frame("hello", {"v": 1, "resume": resume})))
                    frame = decode(await ws.get_message(), max_frame_size=MAX_MESSAGE)
                    if frame.t != "welcome":
                        return "refused", frame.t
                    if frame.h.get("session") != resume["session"]:
                        return "reset", frame.h.get("reason")
                    welcomed = True
                    if on_welcome is not None:
                        on_welcome()
                    while True:
                        frame = decode(await ws.get_message(), max_frame_size=MAX_MESSAGE)
                        if frame.t == "ping":
                            await ws.send_message(encode(Frame("pong", {"a": {}})))
                except ConnectionClosed as exc:
                    code = exc.reason.code
                    return ("fenced" if code == SUPERSEDED_CODE else "closed"), code
        return ("open", None) if welcomed else ("refused", "timed out before a welcome")
    except DIAL_ERRORS as exc:
        return "closed", repr(exc)
