"""The attack vocabulary: one async function per way a hostile client misbehaves.

Each attack dials its own connection(s), misbehaves, and returns a `Verdict`: what the
server did (its close code, or a named observation) against what PROTOCOL.md §10 documents.
A `breach` (a forged token accepted, a replayed frame delivered twice, a session read by a
stranger) is always a failure; a wrong close code is a failure on a healthy network (a
degraded one may eat the close frame, so callers decide how strict to be).

Attacks know nothing about trio's clock or the network backend: the same functions run on
the sim network in `HostileMachine` and on real sockets in `statemodel soak`.
"""

from __future__ import annotations

import functools
import json
import struct
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any, Awaitable, Callable

import trio

from statemodel.stream.errors import CloseCode as C
from statemodel.stream.errors import ProtocolError

from .floods import PREHELLO_KINDS, never_reading, partial_flood, prehello_flood
from .grammar import AboveLimit, Deep, HostileFrame, Obj, Raw, render
from .peer import PeerClosed, RawPeer, open_peer, raw_frame, trickle
from .probes import WS_GARBAGE, command_probe, frame_probe, resume_probe, ws_probe
from .verdict import DROPPED, TIMEOUT, TRANSPORT, AttackContext, Limits, Verdict

__all__ = ["ATTACKS", "QUICK", "SLOW", "AttackContext", "Limits", "Verdict", "DROPPED", "TIMEOUT", "TRANSPORT", "run_attack"]

Attack = Callable[[AttackContext], Awaitable[Verdict]]


def _hello_header(resume: dict | None = None) -> dict:
    return {"t": "hello", "v": 1, **({"resume": resume} if resume else {})}


async def _expect_close(ctx: AttackContext, name: str, expected: tuple, action) -> Verdict:
    """Open a peer, run ``action(peer)``, then report how the server closed it."""
    try:
        async with open_peer(ctx.dial, ctx.timeout) as peer:
            try:
                await action(peer)
            except PeerClosed as exc:
                return Verdict(name, expected, exc.code, detail=exc.reason[:80])
            code = await peer.wait_closed()
            return Verdict(name, expected, TIMEOUT if code is None else code, detail=peer.close_reason[:80])
    except trio.TooSlowError:
        return Verdict(name, expected, TIMEOUT)
    except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        return Verdict(name, expected, TRANSPORT, detail=type(exc).__name__)


def _sender(*messages: bytes | str, hello: bool = False):
    async def action(peer: RawPeer) -> None:
        if hello:
            await peer.hello()
        for m in messages:
            await peer.send(m)
    return action


# ---- malformed input (§2) ----------------------------------------------------------------
async def text_message(ctx):
    return await _expect_close(ctx, "text_message", (C.MALFORMED_FRAME,), _sender('{"t":"hello","v":1}'))


async def truncated_frame(ctx):
    return await _expect_close(ctx, "truncated_frame", (C.MALFORMED_FRAME,), _sender(b"\x00\x00\x01"))


async def header_overrun(ctx):
    """Header length says 4096, the message holds 2 bytes of header."""
    return await _expect_close(ctx, "header_overrun", (C.MALFORMED_FRAME,), _sender(struct.pack(">I", 4096) + b"{}"))


async def header_not_object(ctx):
    return await _expect_close(ctx, "header_not_object", (C.MALFORMED_FRAME,), _sender(raw_frame([1, 2])))  # type: ignore[arg-type]


async def unknown_type(ctx):
    return await _expect_close(ctx, "unknown_type", (C.MALFORMED_FRAME,), _sender(raw_frame({"t": "bogus", "v": 1})))


async def wrong_version(ctx):
    return await _expect_close(ctx, "wrong_version", (C.UNSUPPORTED_VERSION,), _sender(raw_frame({"t": "hello", "v": 2})))


async def frame_before_hello(ctx):
    msg = raw_frame({"t": "open", "s": 1, "q": 1, "k": "t"}, b'{"op":"emit","chunks":[]}')
    return await _expect_close(ctx, "frame_before_hello", (C.PROTOCOL_VIOLATION,), _sender(msg))


async def oversized_frame(ctx):
    """One frame above max_frame_size but within the WebSocket message limit: our 4004."""
    size = ctx.limits.max_frame_size + 1
    msg = raw_frame({"t": "data", "s": 1, "q": 2, "fin": True, "k": "b"}, bytes(size))
    return await _expect_close(ctx, "oversized_frame", (C.FRAME_TOO_LARGE,), _sender(msg, hello=True))


async def oversized_ws_message(ctx):
    """Above the WebSocket layer's max_message_size: trio-websocket itself closes 1009."""
    return await _expect_close(ctx, "oversized_ws_message", (1009,),
                               _sender(bytes(ctx.limits.ws_max_message_size + 1), hello=True))


# ---- protocol violations after hello (§4, §6) --------------------------------------------
async def ack_beyond_sent(ctx):
    return await _expect_close(ctx, "ack_beyond_sent", (C.PROTOCOL_VIOLATION,),
                               _sender(raw_frame({"t": "ack", "a": {"1": 7}}), hello=True))


async def sequence_gap(ctx):
    """An item that skips a sequence number: the receiver cannot know what it missed."""
    async def action(peer):
        await peer.hello()
        await peer.send(raw_frame({"t": "open", "s": 1, "q": 1, "k": "t"}, b'{"op":"emit","chunks":[]}'))
        await peer.send(raw_frame({"t": "data", "s": 1, "q": 3, "fin": True, "k": "t"}, b'{"op":"end"}'))
    return await _expect_close(ctx, "sequence_gap", (C.PROTOCOL_VIOLATION,), action)


async def resume_recv_beyond_sent(ctx):
    """Resume our own session claiming to have received items the server never sent."""
    name, expected = "resume_recv_beyond_sent", (C.PROTOCOL_VIOLATION,)
    try:
        async with open_peer(ctx.dial, ctx.timeout) as first:
            w = await first.hello()
            resume = {"session": w["session"], "token": w["token"], "epoch": w["epoch"], "recv": {"1": 99}}
            verdict = await _expect_close(ctx, name, expected, _sender(raw_frame(_hello_header(resume))))
            await first.close()  # our own session is still fine: leave it properly
            return verdict
    except PeerClosed as exc:
        return Verdict(name, expected, exc.code, detail="first connection closed")


# ---- tokens (§7) -------------------------------------------------------------------------
async def _token_attack(ctx, name: str, use_own_token: bool) -> Verdict:
    async with open_peer(ctx.dial, ctx.timeout) as me:
        w = await me.hello()
        victims = [v for v in ctx.victims() if v != w["session"]]
        victim = ctx.rng.choice(victims) if victims else w["session"]
        # Another session may be gone by now (expired, server restarted): then a fresh
        # session of our own is the right answer, and no breach.
        expected = (C.FORGED_TOKEN, "fresh_session") if victims else (C.FORGED_TOKEN,)
        token = w["token"] if use_own_token and victim != w["session"] else "forged-" + ctx.rng.randbytes(16).hex()
        resume = {"session": victim, "token": token, "epoch": w["epoch"], "recv": {}}
        try:
            async with open_peer(ctx.dial, ctx.timeout) as thief:
                try:
                    got = await thief.hello(resume)
                except PeerClosed as exc:
                    return Verdict(name, expected, exc.code, detail=exc.reason[:80])
                if got["session"] == victim:
                    return Verdict(name, expected, "accepted", breach=f"resumed session {victim[:8]}… with a wrong token")
                return Verdict(name, expected, "fresh_session", detail=f"victim gone: {got.get('reason')}")
        finally:
            await me.close()


async def forged_token(ctx):
    """A known session id (ids are not secret) with a made-up token."""
    return await _token_attack(ctx, "forged_token", use_own_token=False)


async def stolen_token(ctx):
    """Another session's id with *our own* valid token: tokens must be bound to their session."""
    return await _token_attack(ctx, "stolen_token", use_own_token=True)


# ---- replays and storms ------------------------------------------------------------------
async def replay_old_frames(ctx):
    """Resend an already-delivered client message twice: the app must see it exactly once."""
    name, expected = "replay_old_frames", ("exactly_once",)
    async with open_peer(ctx.dial, ctx.timeout) as peer:
        await peer.hello()
        echo = raw_frame({"t": "data", "s": 1, "q": 2, "fin": True, "k": "t"}, b'{"op":"echo","data":"once"}')
        await peer.send(raw_frame({"t": "open", "s": 1, "q": 1, "k": "t"}, b'{"op":"emit","chunks":[]}'))
        for _ in range(3):  # the original and two replays
            await peer.send(echo)
        await peer.send(raw_frame({"t": "data", "s": 1, "q": 3, "fin": True, "k": "t"}, b'{"op":"end"}'))
        await peer.receive_until(lambda f: f.t in ("end", "error") and f.h.get("s") == 1)
        echoes = [f for f in peer.frames if f.t == "data" and f.h.get("s") == 1]
        await peer.close()
        if [bytes(f.payload) for f in echoes] != [b"once"]:
            return Verdict(name, expected, f"{len(echoes)} echoes", breach="a replayed item was delivered again")
        return Verdict(name, expected, "exactly_once")


async def resume_storm(ctx, n: int = 6):
    """Resume our own session n times in a row, keeping every connection open: each newer
    connection fences the older one (4006) and every resume recovers the same session."""
    name, expected = "resume_storm", ("fenced",)
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(open_peer(ctx.dial, ctx.timeout))
        w = await first.hello()
        peers = [first]
        for _ in range(n):
            peer = await stack.enter_async_context(open_peer(ctx.dial, ctx.timeout))
            resume = {"session": w["session"], "token": w["token"], "epoch": w["epoch"], "recv": {}}
            got = await peer.hello(resume)
            if got["session"] != w["session"] or got["outcome"] != "recovered":
                return Verdict(name, expected, f"{got['outcome']}:{got.get('reason')}")
            code = await peers[-1].wait_closed()
            if code != C.SUPERSEDED:
                return Verdict(name, expected, code if code is not None else TIMEOUT, detail="older connection not fenced")
            peers.append(peer)
        await peers[-1].close()
        return Verdict(name, expected, "fenced")


# ---- slow and silent peers (§9) ----------------------------------------------------------
def _upgrade_request() -> bytes:
    return (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


async def slowloris(ctx):
    """Trickle the HTTP upgrade one byte at a time (each byte well within the handshake
    timeout, the whole far beyond it): the server must drop us by handshake_timeout."""
    name, expected = "slowloris", (DROPPED,)
    limit = ctx.limits.handshake_timeout
    with trio.fail_after(ctx.timeout):
        stream = await ctx.dial()
    try:
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trickle, stream, _upgrade_request(), limit / 8)
            with trio.move_on_after(limit * 2 + 1) as scope:
                try:
                    while await stream.receive_some(4096):
                        pass
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass
            nursery.cancel_scope.cancel()
        if scope.cancelled_caught:
            return Verdict(name, expected, "held", detail=f"connection still open after {limit * 2 + 1:g}s")
        return Verdict(name, expected, DROPPED, detail=f"after {trio.current_time() - start:.1f}s")
    finally:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)


async def silent_after_upgrade(ctx):
    """A WebSocket that never says hello: 4007 within handshake_timeout."""
    async def action(peer):
        peer.timeout = ctx.limits.handshake_timeout * 2 + 1
    return await _expect_close(ctx, "silent_after_upgrade", (C.HANDSHAKE_TIMEOUT,), action)


async def garbage_handshake(ctx):
    """Not HTTP at all: the server just drops the transport."""
    name, expected = "garbage_handshake", (DROPPED,)
    with trio.fail_after(ctx.timeout):
        stream = await ctx.dial()
    try:
        try:
            await stream.send_all(ctx.rng.randbytes(64) + b"\r\n\r\n")
            with trio.move_on_after(ctx.limits.handshake_timeout * 2 + 1) as scope:
                while await stream.receive_some(4096):
                    pass
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return Verdict(name, expected, DROPPED)
        return Verdict(name, expected, "held" if scope.cancelled_caught else DROPPED)
    finally:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)


NEVER_ACKS_CHUNK = 256 << 10  # the biggest message any attack asks the server to produce


async def never_acks(ctx, chunks: int = 16, size: int = NEVER_ACKS_CHUNK):
    """Ask for a lot of data, then never read, ack or ping: the server must cut us off
    (4008; or 1013 when others wait for the room we hold, PROTOCOL.md §6 "Pressure") rather
    than buffer without bound. The caller checks memory meanwhile."""
    # On real TCP the server's close frame cannot get through the send buffer we never
    # drained, so the transport just ends (1006): all mean "cut off", as promised.
    name, expected = "never_acks", (C.PEER_DEAD, C.TRY_AGAIN_LATER, 1006)
    command = {"op": "emit", "chunks": [{"kind": "bytes", "seed": i, "size": size} for i in range(chunks)]}
    try:
        async with open_peer(ctx.dial, ctx.timeout, queue=1) as peer:
            ctx.stalled((await peer.hello())["session"])
            await peer.send(raw_frame({"t": "open", "s": 1, "q": 1, "k": "t"}, json.dumps(command).encode()))
            await trio.sleep(ctx.limits.dead_after + 1)  # read nothing, send nothing
            peer.timeout = ctx.limits.dead_after + ctx.timeout
            code = await peer.wait_closed()
            return Verdict(name, expected, TIMEOUT if code is None else code)
    except PeerClosed as exc:
        return Verdict(name, expected, exc.code)


# ---- resource limits ---------------------------------------------------------------------
async def too_many_streams(ctx):
    """One stream beyond max_streams_per_session: an `error{too_many_streams}` item, no close."""
    name, expected = "too_many_streams", ("too_many_streams",)
    n = ctx.limits.max_streams_per_session + 1
    async with open_peer(ctx.dial, ctx.timeout) as peer:
        await peer.hello()
        for sid in range(1, n + 1):
            await peer.send(raw_frame({"t": "open", "s": sid, "q": 1, "k": "t"}, b'{"op":"emit","chunks":[]}'))
        f = await peer.receive_until(lambda f: f.t in ("error", "end"))
        await peer.close()
        observed = f.h.get("reason") if f.t == "error" and f.h.get("s") == n else f"{f.t} on stream {f.h.get('s')}"
        return Verdict(name, expected, observed)


async def session_flood(ctx, sessions_now: int = 0, cap: int = 512):
    """Open sessions until the server says 4009 (max_sessions), then free them all with 1000."""
    name, expected = "session_flood", (C.SERVER_BUSY,)
    n = min(cap, ctx.limits.max_sessions - sessions_now + 1)
    async with AsyncExitStack() as stack:
        peers: list[RawPeer] = []
        try:
            for _ in range(max(1, n)):
                peer = await stack.enter_async_context(open_peer(ctx.dial, ctx.timeout))
                try:
                    await peer.hello()
                except PeerClosed as exc:
                    return Verdict(name, expected, exc.code, detail=f"after {len(peers)} sessions")
                peers.append(peer)
            return Verdict(name, expected, "accepted_all", detail=f"{len(peers)} sessions, no 4009")
        finally:
            for p in peers:
                await p.close()


# ---- drawn from the grammar: the instances that once broke the reference (issue 12) ------
def _command(name: str, command: Obj) -> Attack:
    async def attack(ctx):
        return replace(await command_probe(ctx, command), attack=name)
    attack.__name__ = name
    attack.__doc__ = f"App command {render(command, Limits())[:60]}: a sequenced end/error, the connection lives."
    return attack


def _frame(name: str, phase: str, header: Obj) -> Attack:
    async def attack(ctx):
        return replace(await frame_probe(ctx, phase, HostileFrame(header)), attack=name)
    attack.__name__ = name
    attack.__doc__ = f"{phase}: {render(header, Limits())[:60]}: taken, or a documented close code; never a crash."
    return attack


def _ws(kind: str) -> Attack:
    async def attack(ctx):
        return await ws_probe(ctx, kind)
    attack.__name__ = f"ws_{kind}"
    attack.__doc__ = f"WebSocket-layer garbage ({kind}): the RFC close code, and the session ends."
    return attack


async def rejected_resume(ctx):
    """A resume whose recv acks stream 1 and a stream never sent: refused, it changes nothing."""
    return await resume_probe(ctx, Obj((("1", 1), ("99", 5))))


GRAMMAR_ATTACKS: tuple[Attack, ...] = (
    _command("fail_reason_surrogate", Obj((("op", "fail"), ("reason", "\ud800")))),
    _command("context_key_surrogate", Obj((("op", "set_context"), ("key", "\ud800"), ("value", 1)))),
    _command("echo_surrogate", Obj((("op", "echo"), ("data", "x\ud800")))),
    _command("message_above_limit", Obj((("op", "emit"), ("chunks", [Obj((("kind", "bytes"), ("seed", 1),
                                                                            ("size", AboveLimit())))])))),
    _frame("deep_nesting", "established", Obj((("t", "ack"), ("a", Deep(20_000))))),
    _frame("non_ascii_digit_key", "stream", Obj((("t", "ack"), ("a", Obj((("²", 1),)))))),
    _frame("huge_seq", "stream", Obj((("t", "data"), ("s", 1), ("q", Raw("9" * 5000)), ("fin", True), ("k", "t")))),
    _frame("unknown_fields", "established", Obj((("t", "ping"), ("a", Obj(())), ("x", Deep(3, "{"))))),
    rejected_resume,
    *(_ws(kind) for kind in WS_GARBAGE),
)
RESOURCE_ATTACKS: tuple[Attack, ...] = (
    partial_flood, never_reading,
    *(functools.partial(prehello_flood, kind=kind) for kind in PREHELLO_KINDS),
)


def _name(attack) -> str:
    if isinstance(attack, functools.partial):
        return f"prehello_{attack.keywords['kind']}"
    return attack.__name__


ATTACKS: dict[str, Attack] = {
    _name(f): f
    for f in (text_message, truncated_frame, header_overrun, header_not_object, unknown_type, wrong_version,
              frame_before_hello, oversized_frame, oversized_ws_message, ack_beyond_sent, sequence_gap,
              resume_recv_beyond_sent, forged_token, stolen_token, replay_old_frames, resume_storm,
              slowloris, silent_after_upgrade, garbage_handshake, never_acks, too_many_streams, session_flood,
              *GRAMMAR_ATTACKS, *RESOURCE_ATTACKS)
}
#: Attacks that hold connections or memory for seconds (or many at once): run now and then.
SLOW = ("slowloris", "silent_after_upgrade", "garbage_handshake", "never_acks", "session_flood",
        "partial_flood", "never_reading", *(f"prehello_{k}" for k in PREHELLO_KINDS))
#: Attacks cheap enough to run every few seconds on real time (no long holds, no floods).
QUICK = tuple(n for n in ATTACKS if n not in SLOW)


async def run_attack(name: str, ctx: AttackContext, **kwargs: Any) -> Verdict:
    """Run one attack; transport trouble and timeouts become observations, never crashes."""
    try:
        return await ATTACKS[name](ctx, **kwargs)
    except PeerClosed as exc:
        return Verdict(name, (), exc.code, detail=f"closed early: {exc.reason[:60]}")
    except trio.TooSlowError:
        return Verdict(name, (), TIMEOUT)
    except ProtocolError as exc:
        return Verdict(name, (), "bad_server_frame", breach=f"server sent an invalid frame: {exc}")
    except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        return Verdict(name, (), TRANSPORT, detail=type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - a soak must outlive a surprise; reported as a failure
        return Verdict(name, (), "attack_crashed", detail=f"{type(exc).__name__}: {exc}"[:200])
