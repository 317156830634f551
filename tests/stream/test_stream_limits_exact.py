"""Every documented limit of the reference server hit exactly -- limit - 1, limit, limit + 1 --
through its trio shell (memory streams, virtual time) while an honest session streams on the
same server. At or under a limit everything works and nothing is lost; over it the
documented close code or stream error (PROTOCOL.md §2, §4, §5, §9, §10) with a reason a
person can read; the honest session loses, duplicates and reorders nothing and is never
disconnected; the server survives (no internal error, no traceback). Then several limits
crossed by several sessions at once: a Hypothesis grammar of (limit, offset) lists.

Already covered elsewhere and not repeated here: a message above the limit from the app
(`test_stream_app_limits.py`); parking, shedding and the fairness bound of the shared pool
(`test_stream_fairness.py`, `test_stream_pressure.py`); the hello deadline counted from
accept (`test_stream_prehello.py`).
"""

from __future__ import annotations

import functools
import json
import random
import struct
from dataclasses import replace

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from trio_websocket import ConnectionClosed, wrap_client_stream

from statemodel.machine.logwatch import TracebackWatch
from statemodel.stream.client import Client, Connected
from statemodel.stream.config import Config
from statemodel.stream.frames import decode
from statemodel.stream.server import Server
from statemodel.stream.testapp import blob, script_app, text

# Tiny limits keep every frame small; long heartbeats keep raw peers (which never ping)
# alive for the whole test without anyone sending a ping they would have to answer.
CFG = Config(heartbeat_interval=100.0, dead_after=300.0, send_timeout=300.0, session_ttl=30.0,
             fragment_size=1024, max_frame_size=4096, max_header_size=512, max_message_size=10_000,
             max_sessions=6, max_streams_per_session=3, prehello_max_connections=4, replay_max_bytes=8192,
             app_backlog_bytes=3000, server_max_partial_bytes=50_000)
LIMIT = 1 << 30  # what a raw peer accepts: it must see everything the server says


def _header(h: dict, size: int | None = None) -> bytes:
    """`h` as compact JSON, padded with an unknown key (ignored, §2) to exactly `size` bytes."""
    raw = json.dumps({**h, "pad": ""}, separators=(",", ":")).encode()
    if size is None:
        return json.dumps(h, separators=(",", ":")).encode()
    assert size >= len(raw), (size, len(raw))
    return json.dumps({**h, "pad": "x" * (size - len(raw))}, separators=(",", ":")).encode()


def frame(h: dict, payload: bytes = b"", *, header_size: int | None = None) -> bytes:
    hb = _header(h, header_size)
    return struct.pack(">I", len(hb)) + hb + payload


def command(commands: list, size: int | None = None) -> bytes:
    """A batch command for the script app, padded (unknown key) to exactly `size` bytes."""
    body = {"op": "batch", "commands": commands, "pad": ""}
    raw = json.dumps(body, separators=(",", ":")).encode()
    if size is not None:
        assert size >= len(raw), (size, len(raw))
        body["pad"] = "x" * (size - len(raw))
        raw = json.dumps(body, separators=(",", ":")).encode()
    return raw


def emit(value) -> dict:
    return {"op": "emit", "chunks": [{"kind": "json", "value": value}]}


def open_frame_of_size(size: int, sid: int = 1, value=7) -> bytes:
    hb = _header({"t": "open", "s": sid, "q": 1, "k": "t"})
    return frame({"t": "open", "s": sid, "q": 1, "k": "t"}, command([emit(value), {"op": "end"}], size - 4 - len(hb)))


class Peer:
    """A raw protocol peer over trio-websocket: sends exactly the bytes it is given, reads
    frames (skipping acks, pings and pongs, which it never answers)."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.close: tuple[int, str] | None = None
        self.welcome: dict | None = None

    async def send(self, data: bytes) -> None:
        try:
            await self.ws.send_message(data)
        except ConnectionClosed as exc:
            self.close = (exc.reason.code, exc.reason.reason or "")

    async def next_item(self) -> tuple[str, dict, bytes] | None:
        """The next sequenced item or welcome; None once the server closed (see `close`)."""
        while self.close is None:
            try:
                msg = await self.ws.get_message()
            except ConnectionClosed as exc:
                self.close = (exc.reason.code, exc.reason.reason or "")
                return None
            f = decode(msg, max_frame_size=LIMIT, max_header_size=LIMIT)
            if f.t not in ("ack", "ping", "pong"):
                return f.t, dict(f.h), bytes(f.payload)
        return None

    async def hello(self, data: bytes = frame({"t": "hello", "v": 1})) -> bool:
        await self.send(data)
        item = await self.next_item()
        if item is not None and item[0] == "welcome":
            self.welcome = item[1]
            return True
        assert item is None, item
        return False

    def closed(self) -> str:
        assert self.close is not None
        code, reason = self.close
        assert reason.strip(), f"close {code} without a reason a person can read"
        return f"close {code}"


class Env:
    def __init__(self, server: Server, nursery: trio.Nursery) -> None:
        self.server, self.nursery = server, nursery
        self.honest_go = trio.Event()  # the honest session starts once this is set

    def dial(self) -> trio.abc.Stream:
        c, s = trio.testing.memory_stream_pair()
        self.nursery.start_soon(self.server.handle_stream, s)
        return c

    async def peer(self) -> Peer:
        ws = await wrap_client_stream(self.nursery, self.dial(), "statemodel", "/", max_message_size=LIMIT)
        return Peer(ws)

    async def session(self) -> Peer:
        p = await self.peer()
        assert await p.hello(), p.close
        return p


async def answer_of_stream(p: Peer, sid: int, value) -> str:
    """'ok' once stream `sid` delivered json `value`; else the error reason or close code."""
    while True:
        item = await p.next_item()
        if item is None:
            return p.closed()
        t, h, payload = item
        if h.get("s") != sid:
            continue
        if t == "data":
            assert payload == json.dumps(value).encode(), payload
            return "ok"
        if t == "error":
            return f"error {h['reason']}"
        raise AssertionError(f"unexpected {t} {h} on stream {sid}")


# -- one probe per limit: async (env, offset) -> what was observed; and what PROTOCOL.md says
async def probe_frame(env: Env, d: int) -> str:
    """§2: an encoded frame of max_frame_size bytes is accepted, one byte more gets 4004."""
    p = await env.session()
    await p.send(open_frame_of_size(CFG.max_frame_size + d))
    return await answer_of_stream(p, 1, 7)


async def probe_header(env: Env, d: int) -> str:
    """§2: a JSON header of max_header_size bytes is accepted, one byte more gets 4004."""
    p = await env.session()
    await p.send(frame({"t": "ack", "a": {}}, header_size=CFG.max_header_size + d))
    await p.send(open_frame_of_size(200))  # the connection still works (or is gone)
    return await answer_of_stream(p, 1, 7)


async def probe_ws_message(env: Env, d: int) -> str:
    """§9: WebSocket messages up to ws_max_message_size reach our decoder (4004 for a frame
    above max_frame_size); a larger one is the WebSocket layer's 1009."""
    p = await env.session()
    await p.send(frame({"t": "data", "s": 1, "q": 1, "fin": True, "k": "b"}, b"").ljust(CFG.ws_max_message_size + d, b"\0"))
    assert await p.next_item() is None
    return p.closed()


async def probe_prehello_message(env: Env, d: int) -> str:
    """§5/§9: before hello a WebSocket message of prehello_message_size is accepted (a hello
    is header-only), one byte more gets 1009."""
    p = await env.peer()
    if await p.hello(frame({"t": "hello", "v": 1}, header_size=CFG.prehello_message_size - 4 + d)):
        await p.send(open_frame_of_size(200))
        return await answer_of_stream(p, 1, 7)
    return p.closed()


async def probe_message(env: Env, d: int) -> str:
    """§5: a reassembled client message of max_message_size bytes is delivered, one byte
    more gets 4005."""
    p = await env.session()
    await p.send(frame({"t": "open", "s": 1, "q": 1, "k": "t"}, json.dumps({"op": "emit", "chunks": []}).encode()))
    msg = command([emit(7), {"op": "end"}], CFG.max_message_size + d)
    parts = [msg[i:i + 3000] for i in range(0, len(msg), 3000)]
    for q, part in enumerate(parts, start=2):
        await p.send(frame({"t": "data", "s": 1, "q": q, "fin": q == len(parts) + 1, "k": "t"}, part))
    return await answer_of_stream(p, 1, 7)


async def probe_streams(env: Env, d: int) -> str:
    """§4: max_streams_per_session open streams work; the next open gets the stream error
    too_many_streams (the session goes on)."""
    p = await env.session()
    n = CFG.max_streams_per_session + d
    for sid in range(1, n + 1):  # streams that stay open (no end)
        body = json.dumps(emit(sid)).encode()
        await p.send(frame({"t": "open", "s": sid, "q": 1, "k": "t"}, body))
    answers = {}
    while len(answers) < n:
        item = await p.next_item()
        assert item is not None, p.close
        t, h, payload = item
        if t in ("data", "error"):
            answers[h["s"]] = "ok" if t == "data" and payload == str(h["s"]).encode() else f"{t} {h.get('reason')}"
    assert all(answers[s] == "ok" for s in range(1, n)), answers  # those below the limit all work
    return answers[n]


async def send_message(p: Peer, sid: int, first_q: int, msg: bytes, *, fin: bool = True, size: int = 3000) -> int:
    """`msg` as data fragments of at most `size` bytes from seq `first_q`; the next seq."""
    parts = [msg[i:i + size] for i in range(0, len(msg), size)] or [b""]
    for i, part in enumerate(parts):
        await p.send(frame({"t": "data", "s": sid, "q": first_q + i, "fin": fin and i == len(parts) - 1, "k": "t"}, part))
    return first_q + len(parts)


async def probe_unfinished(env: Env, d: int) -> str:
    """§5: unfinished messages of one session, together, up to max_message_size are kept (and
    complete); one byte more gets 4005."""
    p = await env.session()
    for sid in (1, 2):
        await p.send(frame({"t": "open", "s": sid, "q": 1, "k": "t"}, json.dumps({"op": "emit", "chunks": []}).encode()))
    half = CFG.max_message_size // 2
    sizes = {1: half, 2: CFG.max_message_size - half + d}
    for sid, size in sizes.items():  # every byte of both messages, no fin yet
        await send_message(p, sid, 2, command([emit(sid), {"op": "end"}], size), fin=False)
    answers = []
    for sid, size in sizes.items():  # the fins, empty: the unfinished bytes stay as they were
        await p.send(frame({"t": "data", "s": sid, "q": 2 + -(-size // 3000), "fin": True, "k": "t"}))
    for sid in sizes:
        answers.append(await answer_of_stream(p, sid, sid))
        if answers[-1] != "ok":
            return answers[-1]
    return "ok"


async def probe_app_backlog(env: Env, d: int) -> str:
    """§4: client messages a stream's app has not read yet, up to app_backlog_bytes, are all
    delivered once it reads; one byte more fails the stream with app_backlog."""
    p = await env.session()
    size = CFG.replay_max_bytes  # two such blobs: the app waits on the second until we ack
    await p.send(frame({"t": "open", "s": 1, "q": 1, "k": "t"}, json.dumps({"op": "emit", "chunks": [
        {"kind": "bytes", "seed": 1, "size": size}, {"kind": "bytes", "seed": 2, "size": size}]}).encode()))
    first = await p.next_item()
    assert first is not None and first[0] == "data", first
    last = first[1]["q"]
    while True:  # the first blob, whole (fragments of fragment_size)
        if first[1].get("fin"):
            break
        first = await p.next_item()
        assert first is not None and first[0] == "data", first
        last = first[1]["q"]
    m1 = command([emit("a")], 1000)
    m2 = command([emit(8), {"op": "end"}], CFG.app_backlog_bytes - 1000 + d)
    q = await send_message(p, 1, 2, m1)
    await send_message(p, 1, q, m2)
    await p.send(frame({"t": "ping", "a": {}}))  # round trip: both messages are in before we ack
    while True:
        await p.send(frame({"t": "ack", "a": {"1": last}}))
        item = await p.next_item()
        if item is None:
            return p.closed()
        t, h, payload = item
        if h.get("s") != 1:
            continue
        last = h["q"]
        if t == "error":
            return f"error {h['reason']}"
        if t == "data" and payload == b"8":
            return "ok"


PROBES = {
    "max_frame_size": (probe_frame, lambda d: "ok" if d <= 0 else "close 4004"),
    "max_header_size": (probe_header, lambda d: "ok" if d <= 0 else "close 4004"),
    "ws_max_message_size": (probe_ws_message, lambda d: "close 4004" if d <= 0 else "close 1009"),
    "prehello_message_size": (probe_prehello_message, lambda d: "ok" if d <= 0 else "close 1009"),
    "max_message_size": (probe_message, lambda d: "ok" if d <= 0 else "close 4005"),
    "max_streams_per_session": (probe_streams, lambda d: "ok" if d <= 0 else "error too_many_streams"),
    "unfinished_per_session": (probe_unfinished, lambda d: "ok" if d <= 0 else "close 4005"),
    "app_backlog_bytes": (probe_app_backlog, lambda d: "ok" if d <= 0 else "error app_backlog"),
}


async def honest_session(env: Env, done: trio.Event, got: list, events: list) -> None:
    """Request after request on one stream (each message spans two fragments) until `done`
    and then three more: everything must arrive once, in order, without a disconnect."""
    async def connect():
        return env.dial()

    await env.honest_go.wait()
    async with Client(connect, CFG, rng=random.Random(2)).run() as client:
        stream = await client.open(json.dumps({"op": "emit", "chunks": []}))
        i = 0
        extra = 3
        while extra and i < 1000:
            await stream.send(json.dumps({"op": "emit", "chunks": [{"kind": "text", "seed": i, "chars": 1500}]}))
            got.append(await stream.receive())
            i += 1
            if done.is_set():
                extra -= 1
            await trio.sleep(0.05)  # virtual: lets the clock move while probes wait
        while True:
            try:
                events.append(client.status.receive_nowait())
            except trio.WouldBlock:
                break


async def with_honest_session(body, config: Config = CFG, *, honest_later: bool = False):
    """Run `body(env)` beside the honest session: started first, or (`honest_later`) when
    the body sets `env.honest_go`."""
    got: list = []
    events: list = []
    async with Server(script_app, config, rng=random.Random(1)) as server, trio.open_nursery() as nursery:
        env = Env(server, nursery)
        env.got = got
        done = trio.Event()
        with trio.fail_after(120):
            async with trio.open_nursery() as inner:
                inner.start_soon(honest_session, env, done, got, events)
                if not honest_later:
                    env.honest_go.set()
                while not honest_later and server.stats()["sessions"] < 1:  # the honest session is in first
                    await trio.sleep(0.01)
                result = await body(env)
                done.set()
        stats = server.stats()
        nursery.cancel_scope.cancel()
    assert got == [text(i, 1500) for i in range(len(got))], "the honest session lost, duplicated or reordered"
    assert len(got) >= 4
    assert [type(e) for e in events] == [Connected], events
    assert stats["internal_errors"] == 0 and stats["closed_internal_error"] == 0, stats
    return result, stats


def run(fn, *args, **kwargs):
    with TracebackWatch() as tracebacks:
        result = trio.run(functools.partial(fn, *args, **kwargs), clock=trio.testing.MockClock(autojump_threshold=0))
    tracebacks.check("limits")
    return result


@pytest.mark.parametrize("d", [-1, 0, 1])
@pytest.mark.parametrize("name", sorted(PROBES))
def test_each_limit_hit_exactly_beside_an_honest_session(name, d):
    probe, expected = PROBES[name]

    async def body(env):
        return await probe(env, d)

    observed, _ = run(with_honest_session, body)
    assert observed == expected(d), f"{name} at limit{d:+d}: {observed}"


@pytest.mark.parametrize("d", [-1, 0, 1])
def test_max_sessions_exactly_beside_an_honest_session(d):
    """§9/§10: max_sessions sessions (the honest one included) are welcomed; the next hello
    gets the retryable 4009, and the sessions already in keep working."""
    async def body(env):
        peers, welcomed = [], []
        for _ in range(CFG.max_sessions - 1 + d):  # one at a time: not a pre-hello flood
            peers.append(await env.peer())
            welcomed.append(await peers[-1].hello())
        assert all(welcomed[:-1]), [p.close for p in peers]
        for p in peers[:-1]:  # every session that got in still works
            await p.send(open_frame_of_size(200))
            assert await answer_of_stream(p, 1, 7) == "ok"
        return ("ok" if welcomed[-1] else peers[-1].closed()), env.server.stats()["sessions"]

    (observed, sessions), _ = run(with_honest_session, body)
    assert observed == ("ok" if d <= 0 else "close 4009")
    assert sessions == min(CFG.max_sessions, CFG.max_sessions + d)


@pytest.mark.parametrize("d", [-1, 0, 1])
def test_prehello_max_connections_exactly(d):
    """§9: prehello_max_connections connections without a hello are all kept; one more
    drops exactly one, the oldest; the honest session (past its hello) is not counted."""
    async def body(env):
        idle = []
        for _ in range(CFG.prehello_max_connections + d):  # TCP only, accepted in this order
            idle.append(env.dial())
            await trio.sleep(0.01)
        during = env.server.stats()
        alive = []
        for s in idle:  # the oldest is the one dropped: its stream is at EOF
            try:
                with trio.move_on_after(0.1):
                    alive.append(await s.receive_some(1) != b"")
                    continue
                alive.append(True)  # nothing to read: still held
            except trio.BrokenResourceError:
                alive.append(False)
        for s in idle:
            await trio.aclose_forcefully(s)
        return during, alive

    (during, alive), _ = run(with_honest_session, body)
    dropped = max(0, d)
    assert during["prehello_dropped"] == dropped and during["prehello"] == CFG.prehello_max_connections + min(d, 0)
    assert alive == [False] * dropped + [True] * (len(alive) - dropped)


@pytest.mark.parametrize("d", [-1, 1])
def test_handshake_timeout_exactly(d):
    """§9: a hello that arrives just before handshake_timeout after the accept is welcomed;
    one just after it finds the connection closed 4007. (At the instant either is allowed.)"""
    async def body(env):
        p = await env.peer()
        await trio.sleep(CFG.handshake_timeout + d * 0.01)
        return "ok" if await p.hello() else p.closed()

    observed, _ = run(with_honest_session, body)
    assert observed == ("ok" if d < 0 else "close 4007")


@pytest.mark.parametrize("d", [-1, 1])
def test_session_ttl_exactly(d):
    """§9: a resume just before session_ttl after the connection was lost recovers the
    session; one just after gets reset/session_expired (at the instant either is allowed)."""
    async def body(env):
        p = await env.session()
        w = p.welcome
        await trio.aclose_forcefully(p.ws._stream)  # an abrupt loss, no close frame
        await trio.sleep(0)
        await trio.testing.wait_all_tasks_blocked()
        await trio.sleep(CFG.session_ttl + d * 0.01)
        q = await env.peer()
        resume = {"session": w["session"], "token": w["token"], "epoch": w["epoch"], "recv": {}}
        assert await q.hello(frame({"t": "hello", "v": 1, "resume": resume})), q.close
        return q.welcome["outcome"], q.welcome.get("reason")

    observed, _ = run(with_honest_session, body)
    assert observed == (("recovered", None) if d < 0 else ("reset", "session_expired"))


@pytest.mark.parametrize("d", [-1, 0, 1])
def test_server_max_partial_bytes_exactly(d):
    """§5: unfinished messages of all sessions up to server_max_partial_bytes are kept; one
    byte more closes the session whose unfinished message is the oldest with the retryable
    1013 (it replays after a reconnect), even when it is the smaller one, and the newer one
    completes its message."""
    cfg = replace(CFG, server_max_partial_bytes=15_000)

    async def body(env):
        a, b = await env.session(), await env.session()
        sizes = {}
        for p, size in ((a, 6000), (b, cfg.server_max_partial_bytes - 6000 + d)):  # the oldest, not the largest
            await p.send(frame({"t": "open", "s": 1, "q": 1, "k": "t"}, json.dumps({"op": "emit", "chunks": []}).encode()))
            sizes[p] = await send_message(p, 1, 2, command([emit(7), {"op": "end"}], size), fin=False)
            await trio.sleep(1)  # a's unfinished message is the older one
        for p, q in sizes.items():
            await p.send(frame({"t": "data", "s": 1, "q": q, "fin": True, "k": "t"}))
        return [await answer_of_stream(p, 1, 7) for p in (a, b)]

    observed, _ = run(with_honest_session, body, cfg)
    assert observed == (["ok", "ok"] if d <= 0 else ["close 1013", "ok"])


async def never_ack_then_ack(p: Peer, chunks: list[dict], on_quiet=None) -> tuple[list[bytes], list[bytes]]:
    """Open a stream emitting `chunks` then end; read without acking until the server goes
    quiet (what it sent: the messages before); then ack as we read until `end` (all)."""
    await p.send(frame({"t": "open", "s": 1, "q": 1, "k": "t"}, command([{"op": "emit", "chunks": chunks}, {"op": "end"}])))
    messages: list[bytes] = []
    part, last, before = b"", 0, None
    while True:
        if before is None:
            with trio.move_on_after(CFG.stall_after / 4) as quiet:  # virtual; before any parking
                item = await p.next_item()
            if quiet.cancelled_caught:
                before = list(messages)
                if on_quiet is not None:
                    await on_quiet()
                await p.send(frame({"t": "ack", "a": {"1": last}}))
                continue
        else:
            item = await p.next_item()
        assert item is not None, p.close
        t, h, payload = item
        assert h.get("s") == 1 and h["q"] == last + 1, (t, h, last)  # in order, no gap, no copy
        last = h["q"]
        if before is not None:
            await p.send(frame({"t": "ack", "a": {"1": last}}))
        if t == "end":
            return before if before is not None else list(messages), messages
        assert t == "data", (t, h)
        part += payload
        if h["fin"]:
            messages.append(part)
            part = b""


@pytest.mark.parametrize("d", [-1, 0, 1])
def test_replay_max_bytes_exactly(d):
    """§6: the server's app produces while its unacked bytes are below replay_max_bytes (a
    message is admitted whole, so the bound is overshot by at most one); at the bound it
    waits; an ack resumes it and nothing is lost, copied or reordered."""
    size = 1000
    n = CFG.replay_max_bytes // size  # messages of `size` bytes: after n of them, bound - r
    first = size + (CFG.replay_max_bytes - n * size) + d  # ...so after n: exactly bound + d
    chunks = [{"kind": "bytes", "seed": i, "size": first if i == 0 else size} for i in range(n + 4)]

    async def body(env):
        return await never_ack_then_ack(await env.session(), chunks)

    (before, everything), _ = run(with_honest_session, body)
    assert len(before) == (n + 1 if d < 0 else n)
    assert everything == [blob(c["seed"], c["size"]) for c in chunks]


@pytest.mark.parametrize("d", [-1, 0, 1])
def test_replay_max_count_exactly(d):
    """§6: the app produces while fewer than replay_max_count items are unacked; exactly
    that many go out before an ack, then the rest, in order, each once."""
    cfg = replace(CFG, replay_max_count=6)
    chunks = [{"kind": "json", "value": i} for i in range(cfg.replay_max_count + d)]

    async def body(env):
        return await never_ack_then_ack(await env.session(), chunks)

    (before, everything), _ = run(with_honest_session, body, cfg)
    assert len(before) == min(len(chunks), cfg.replay_max_count)
    assert everything == [str(i).encode() for i in range(len(chunks))]


@pytest.mark.parametrize("d", [-1, 0, 1])
@pytest.mark.parametrize("bound", ["bytes", "items"])
def test_server_max_buffered_exactly(bound, d):
    """§6: the shared pool. A session's app produces while the pool holds less than
    server_max_buffered_bytes / _items (its own bounds far away); at the bound it waits.
    Meanwhile a session holding nothing still gets its messages (one at a time: the
    overdraft), so the honest one streams while the pool is full; the ack resumes the
    first, nothing lost, copied or reordered."""
    size = 1000
    if bound == "bytes":
        cfg = replace(CFG, server_max_buffered_bytes=8192, replay_max_bytes=1 << 20)
        n = cfg.server_max_buffered_bytes // size
        first = size + (cfg.server_max_buffered_bytes - n * size) + d
        chunks = [{"kind": "bytes", "seed": i, "size": first if i == 0 else size} for i in range(n + 4)]
        expected_before = n + 1 if d < 0 else n
    else:
        cfg = replace(CFG, server_max_buffered_items=6, replay_max_count=4096)
        chunks = [{"kind": "bytes", "seed": i, "size": 10} for i in range(cfg.server_max_buffered_items + d)]
        expected_before = min(len(chunks), cfg.server_max_buffered_items)

    async def body(env):
        async def honest_now():
            env.honest_go.set()
            # virtual time, less than stall_after: the first session is not parked yet, so
            # the honest one streams on the overdraft alone while the pool is full
            await trio.sleep(cfg.stall_after / 2)
            progress.append(len(env.got))

        result = await never_ack_then_ack(await env.session(), chunks, honest_now)
        if not env.honest_go.is_set():  # below the bound everything came at once: no quiet moment
            await honest_now()
        return result

    progress: list[int] = []
    (before, everything), _ = run(with_honest_session, body, cfg, honest_later=True)
    assert len(before) == expected_before
    assert progress[0] >= 3, f"the honest session got {progress[0]} messages while the pool was full"
    assert everything == [blob(c["seed"], c["size"]) for c in chunks]


# -- many at once ------------------------------------------------------------------------------
CONCURRENT = sorted(PROBES)  # max_sessions and prehello_max_connections are server-wide counts


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(CONCURRENT), st.sampled_from([-1, 0, 1])), min_size=2,
                max_size=CFG.prehello_max_connections))  # more racing upgrades: the oldest is dropped (§9)
def test_several_limits_crossed_by_several_sessions_at_once(cases):
    """Each probe on its own session, all at once, beside the honest session: each gets
    exactly what it would get alone, and the honest session loses nothing."""
    observed: dict[int, str] = {}

    async def body(env):
        async def one(i, name, d):
            observed[i] = await PROBES[name][0](env, d)

        async with trio.open_nursery() as n:
            for i, (name, d) in enumerate(cases):
                n.start_soon(one, i, name, d)
        return observed

    result, _ = run(with_honest_session, body)
    assert result == {i: PROBES[name][1](d) for i, (name, d) in enumerate(cases)}


@settings(max_examples=10, deadline=None)
@given(st.integers(0, CFG.max_sessions - 1), st.integers(0, 3))
def test_hellos_racing_for_the_last_sessions(held, extra):
    """§9/§10: with `held` sessions in (the honest one too) and more hellos arriving at once
    than slots are free, exactly the free slots are welcomed and every other hello gets 4009
    (below the pre-hello count, so none is dropped for that)."""
    free = CFG.max_sessions - 1 - held
    racing = min(free + extra, CFG.prehello_max_connections)

    async def body(env):
        for _ in range(held):
            await env.session()
        peers = [await env.peer() for _ in range(racing)]
        answers: list[str] = []

        async def hello(p):
            answers.append("ok" if await p.hello() else p.closed())

        async with trio.open_nursery() as n:
            for p in peers:
                n.start_soon(hello, p)
        return sorted(answers), env.server.stats()["sessions"]

    (answers, sessions), _ = run(with_honest_session, body)
    welcomed = min(free, racing)
    assert answers == sorted(["ok"] * welcomed + ["close 4009"] * (racing - welcomed))
    assert sessions == 1 + held + welcomed
