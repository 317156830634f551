"""Hostile servers for the client: does a server that keeps failing it cause a retry storm?

A server may welcome the client and then close at once (1001, 1011, 1013, 4008), drop the
transport, answer garbage, or close with a code the client must treat as final. PROTOCOL.md
§11: retryable codes back off, growing across reconnects until a connection was healthy for
a while; final codes are final. `count_connections` runs the reference `Client` against one
such behaviour on the sim network for a stretch of virtual time and counts its connections;
`bounds.reconnects_within` says how many are allowed. It stops early once the count passes
``stop_after`` -- a client that reconnects with no delay at all does so in zero virtual
time, and would otherwise spin for ever.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import trio
from trio_websocket import ConnectionClosed, wrap_server_stream

from statemodel.net.sim import SimNetwork
from statemodel.stream.client import Client
from statemodel.stream.config import Config
from statemodel.stream.errors import CloseCode as C
from statemodel.stream.errors import SessionClosed
from statemodel.stream.frames import Frame, decode, encode

#: After the welcome, what the hostile server does: a close code, or a named misbehaviour.
RETRYABLE_AFTER_WELCOME = (C.GOING_AWAY, C.INTERNAL_ERROR, 1013, C.PEER_DEAD, "drop")
FINAL_AFTER_WELCOME = (C.NORMAL, C.MALFORMED_FRAME, C.UNSUPPORTED_VERSION, C.PROTOCOL_VIOLATION,
                       C.FRAME_TOO_LARGE, C.MESSAGE_TOO_LARGE, 1009)
#: Garbage instead of protocol: undecodable bytes, a text message, a second welcome; the
#: ``+ping`` kinds add a WebSocket ping as the client closes (trio-websocket #184: answering
#: it while closing raised in the client's reader, and the client retried at once).
GARBAGE = ("garbage", "text", "second_welcome", "garbage+ping", "text+ping")
BEHAVIOURS = RETRYABLE_AFTER_WELCOME + FINAL_AFTER_WELCOME + GARBAGE


@dataclass
class StormResult:
    behaviour: object
    seconds: float  # virtual seconds the client ran
    connections: int = 0
    welcomes: int = 0
    gave_up: str | None = None  # the client's SessionClosed, if it gave up
    stopped_early: bool = False  # passed stop_after: the count is a lower bound
    times: list[float] = field(default_factory=list, repr=False)  # virtual time of each connection

    def describe(self) -> str:
        span = self.times[-1] - self.times[0] if self.times else 0.0
        more = "+ (stopped counting)" if self.stopped_early else ""
        return f"{self.connections}{more} connections within {span:.3f} virtual s"


def _welcome(hello: Frame, n: int) -> bytes:
    resume = hello.h.get("resume") or {}
    same = bool(resume)
    return encode(Frame("welcome", {"v": 1, "session": resume.get("session", f"s{n}"), "token": "t", "epoch": "e",
                                    "outcome": "recovered" if same else "new", "recv": {}, "lost": {}}))


async def _serve_one(stream, behaviour, n: int, result: StormResult) -> None:
    async with trio.open_nursery() as nursery:
        try:
            request = await wrap_server_stream(nursery, stream)
            ws = await request.accept()
            hello = decode(await ws.get_message())
            await ws.send_message(_welcome(hello, n))
            result.welcomes += 1
            kind = str(behaviour)
            if behaviour == "drop":
                await trio.aclose_forcefully(stream)
            elif isinstance(behaviour, int):
                with trio.move_on_after(1.0):
                    await ws.aclose(int(behaviour), "hostile server")
            else:
                if kind.startswith("garbage"):
                    await ws.send_message(b"\x00\x00\x00\x09not json!")
                elif kind.startswith("text"):
                    await ws.send_message("a text message")
                elif kind == "second_welcome":
                    await ws.send_message(_welcome(hello, n))
                if kind.endswith("+ping"):
                    await ws.ping(b"are you closing?")
                with trio.move_on_after(5.0):
                    while True:
                        await ws.get_message()
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            nursery.cancel_scope.cancel()
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)


async def count_connections(behaviour, config: Config = Config(), seconds: float = 60.0, *,
                            stop_after: int = 10_000, seed: int = 0) -> StormResult:
    """Run a reference `Client` against a server that always does ``behaviour`` right after
    its welcome, for ``seconds`` of (virtual) time; count the client's connections."""
    net = SimNetwork(seed, record_bytes=False)
    result = StormResult(behaviour, seconds)
    listener = net.listener()
    client = Client(net.connect, config, random.Random(seed))
    async with trio.open_nursery() as nursery:

        async def accept() -> None:
            while True:
                stream = await listener.accept()
                result.connections += 1
                result.times.append(trio.current_time())
                if result.connections > stop_after:
                    result.stopped_early = True
                    nursery.cancel_scope.cancel()
                    return
                nursery.start_soon(_serve_one, stream, behaviour, result.connections, result)

        nursery.start_soon(accept)

        async def drain() -> None:
            async for _status in client.status:
                pass

        nursery.start_soon(drain)
        start = trio.current_time()
        with trio.move_on_after(seconds):
            async with client.run():
                stream = await client.open(b'{"op":"emit","chunks":[]}')
                try:
                    await stream.receive()
                except SessionClosed as exc:
                    result.gave_up = str(exc)
                except Exception as exc:  # noqa: BLE001 - what the caller of the client would see
                    result.gave_up = f"{type(exc).__name__}: {exc}"
                if result.gave_up is None:
                    await trio.sleep_forever()
        result.seconds = trio.current_time() - start
        nursery.cancel_scope.cancel()
    return result
