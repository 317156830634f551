"""The client's reconnect rate has a floor by construction (issue 12, observation 5).

The attempt counter used to reset on every welcome, so a server that closes right after
welcome (1001, 1011, 1013, 4008, a drop) got ~750 connections/s, and a final close the
client decided itself, lost to the WebSocket layer, became an endless retry. Hostile
servers on the sim network, virtual time (MockClock): connections are counted per
virtual second, and a run that exceeds the bound stops at once with a verdict."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
import trio
import trio.testing

from raw_websocket import OP_PING, RawServer
from statemodel.net.sim import SimNetwork
from statemodel.stream import protocol as P
from statemodel.stream import websocket
from statemodel.stream.client import Client, Reconnecting
from statemodel.stream.config import Config
from statemodel.stream.errors import CloseCode, SessionClosed
from statemodel.stream.frames import Frame, decode, encode

CFG = Config()
WELCOME = {"v": 1, "session": "s", "token": "t", "epoch": "e", "outcome": "new", "recv": {}, "lost": {}}


def run(fn, *args):
    return trio.run(fn, *args, clock=trio.testing.MockClock(autojump_threshold=0))


class TooMany(Exception):
    pass


async def hostile_server(net: SimNetwork, behaviour, times: list[float], limit: int, *, task_status=trio.TASK_STATUS_IGNORED):
    """Accept forever; `behaviour(ws, stream)` per connection; count connection times."""
    listener = net.listener()
    task_status.started()
    async with trio.open_nursery() as nursery:
        while True:
            stream = await listener.accept()
            times.append(trio.current_time())
            if len(times) > limit:
                raise TooMany(f"{len(times)} connections by virtual t={trio.current_time():.3f}s")
            nursery.start_soon(_serve_one, stream, behaviour)


async def _serve_one(stream, behaviour) -> None:
    try:
        async with trio.open_nursery() as n:
            with trio.move_on_after(5):
                ws = await websocket.accept(n, stream, message_queue_size=8, max_message_size=1 << 20,
                                            receive_buffer_size=65536)
            if ws is not None:
                hello = decode(await ws.get_message())
                outcome = "recovered" if "resume" in hello.h else "new"
                await ws.send_message(encode(Frame("welcome", {**WELCOME, "outcome": outcome})))
                await behaviour(ws, stream)
            n.cancel_scope.cancel()
    except Exception:  # noqa: BLE001 - the client went away mid-way: irrelevant here
        pass
    finally:
        await trio.aclose_forcefully(stream)


def close_with(code: int | None, after: float = 0.0):
    async def behaviour(ws, stream):
        await trio.sleep(after)
        if code is None:
            await trio.aclose_forcefully(stream)  # a drop: no close frame
        else:
            with trio.move_on_after(1):
                await ws.aclose(code, "bye")
    return behaviour


def floor_schedule(cfg: Config, horizon: float) -> int:
    """Connections a client can make in `horizon` seconds if every delay is at its floor,
    (1 - jitter) x nominal, and every connection lasts no time at all: the bound."""
    t, n, level = 0.0, 1, 1
    while True:
        nominal = 0.0 if level <= 1 else min(cfg.backoff_max, cfg.backoff_base * 2 ** (level - 2))
        t += nominal * (1 - cfg.backoff_jitter)
        if t > horizon:
            return n
        n, level = n + 1, level + 1


HORIZON = 120.0


@pytest.mark.parametrize("code", [1001, 1011, 1013, 4008, None], ids=lambda c: f"close {c}" if c else "drop")
def test_a_server_that_closes_right_after_welcome_gets_a_bounded_connection_rate(code):
    bound = floor_schedule(CFG, HORIZON)

    async def main():
        net = SimNetwork(seed=1)
        times: list[float] = []
        async with trio.open_nursery() as n:
            await n.start(hostile_server, net, close_with(code), times, bound + 1)
            client = Client(net.connect, CFG, rng=random.Random(7))
            async with client.run():
                await trio.sleep(HORIZON)
            n.cancel_scope.cancel()
        return times

    times = run(main)
    per_second = Counter(int(t) for t in times)
    assert len(times) <= bound, len(times)
    assert len(times) >= 10  # it does keep retrying (all these codes are retryable)
    # in steady state one connection per backoff_max x (1 - jitter) at most
    late = [t for t in times if t >= 60]
    gaps = [b - a for a, b in zip(late, late[1:])]
    assert min(gaps) >= CFG.backoff_max * (1 - CFG.backoff_jitter) - 1e-9, gaps
    assert max(per_second.values()) <= 8, per_second.most_common(3)


def test_a_healthy_connection_resets_the_backoff():
    """Up for healthy_after, then closed: the next reconnect is immediate again; before, the
    delays grew while each connection ended right after welcome."""
    lifetimes = iter([0.0] * 6 + [CFG.healthy_after + 1] + [0.0] * 3)

    async def behaviour(ws, stream):
        await close_with(1001, next(lifetimes, 0.0))(ws, stream)

    async def main():
        net = SimNetwork(seed=2)
        times: list[float] = []
        delays: list[float] = []
        async with trio.open_nursery() as n:
            await n.start(hostile_server, net, behaviour, times, 1000)
            client = Client(net.connect, CFG, rng=random.Random(3))
            async with client.run():
                while len(delays) < 10:
                    ev = await client.status.receive()
                    if isinstance(ev, Reconnecting):
                        delays.append(ev.delay)
            n.cancel_scope.cancel()
        return delays

    delays = run(main)
    # delays[k] follows connection k+1
    assert delays[0] == 0.0 and all(d > 0 for d in delays[1:6])
    assert delays[1] < delays[3] < delays[5]  # growing: each connection was unhealthy
    assert delays[6] == 0.0  # the seventh connection stayed up healthy_after: reset
    assert delays[7] > 0.0


async def _one_connection_then(behaviour, cfg: Config = CFG):
    net = SimNetwork(seed=3)
    times: list[float] = []
    async with trio.open_nursery() as n:
        await n.start(hostile_server, net, behaviour, times, 50)
        client = Client(net.connect, cfg, rng=random.Random(4))
        async with client.run():
            with pytest.raises(SessionClosed) as info, trio.fail_after(60):
                await (await client.open(b"x")).receive()
        n.cancel_scope.cancel()
    return info.value, len(times)


def test_a_malformed_server_frame_is_final_one_connection():
    async def behaviour(ws, stream):
        await ws.send_message(b"\x00\x00")  # truncated frame: the client closes 4000
        with trio.move_on_after(5):
            await ws.get_message()

    closed, connections = run(_one_connection_then, behaviour)
    assert closed.code == CloseCode.MALFORMED_FRAME and connections == 1


def test_a_final_close_lost_to_a_ping_while_closing_stays_final():
    """The client closes 4002 (ack beyond sent); the server pings instead of answering the
    close frame. trio-websocket 0.12.2 (upstream #184) answered the ping with a pong wsproto
    refuses in LOCAL_CLOSING, the client's reader died, and its own final 4002 was lost:
    it retried for ever. The client's own final code must stand: one connection."""
    async def main():
        net = SimNetwork(seed=4)
        connections = []

        async def serve():
            listener = net.listener()
            while True:
                stream = await listener.accept()
                connections.append(stream)
                peer = RawServer(stream)
                await peer.handshake()
                await peer.receive_until(lambda p: p.messages)  # hello
                await peer.send_message(encode(Frame("welcome", WELCOME)))
                await peer.send_message(encode(Frame("ack", {"a": {"1": 99}})))
                await peer.receive_until(lambda p: p.close is not None)
                await stream.send_all(bytes([0x80 | OP_PING, 2]) + b"hi")  # not the close reply
                await trio.sleep(3)
                await trio.aclose_forcefully(stream)

        async with trio.open_nursery() as n:
            n.start_soon(serve)
            client = Client(net.connect, CFG, rng=random.Random(4))
            async with client.run():
                with pytest.raises(SessionClosed) as info, trio.fail_after(60):
                    await (await client.open(b"x")).receive()
            n.cancel_scope.cancel()
        return info.value, len(connections)

    closed, connections = run(main)
    assert closed.code == CloseCode.PROTOCOL_VIOLATION and connections == 1


def test_an_exception_of_the_clients_own_ends_the_session_instead_of_retrying(monkeypatch, caplog):
    real = P.ClientProtocol._frame

    def buggy(self, f, now):
        if f.t == "data":
            raise KeyError("client bug")
        return real(self, f, now)

    monkeypatch.setattr(P.ClientProtocol, "_frame", buggy)

    async def behaviour(ws, stream):
        await ws.send_message(encode(Frame("data", {"s": 1, "q": 1, "fin": True, "k": "b"}, b"x")))
        with trio.move_on_after(5):
            await ws.get_message()

    closed, connections = run(_one_connection_then, behaviour)
    assert closed.code == CloseCode.INTERNAL_ERROR and "KeyError" in closed.reason and connections == 1
    errors = [r for r in caplog.records if r.name == "statemodel.stream.client" and r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].exc_info is None  # one line, no traceback


def test_backoff_settings_that_allow_a_storm_are_refused():
    for bad in ({"backoff_base": 0}, {"backoff_jitter": 1.0}, {"healthy_after": 0},
                {"backoff_base": 2.0, "backoff_max": 1.0}):
        with pytest.raises(ValueError):
            Config(**bad)
    assert json.dumps(CFG.healthy_after)
