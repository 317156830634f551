"""trio shell of the reference client: hides reconnects behind streams and status events.

`connect` is any ``async () -> trio.abc.Stream`` (TCP, memory, the fault network). The
session (sequence numbers, replay buffers, context) lives in `protocol.ClientProtocol` and
survives reconnects; backoff jitter comes from the injected `rng` so sim runs replay exactly.
"""

from __future__ import annotations

import logging
import math
import random
import secrets
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

import trio

from statemodel import timers

from . import protocol as P
from . import websocket
from .config import Config
from .errors import CloseCode, EndOfStream, SessionClosed, StreamError, StreamReset, describe, is_retryable
from .wslink import Notifier, run_link

Connect = Callable[[], Awaitable[trio.abc.Stream]]
log = logging.getLogger(__name__)


# -- status events (in order on `client.status`) ------------------------------------------
@dataclass(frozen=True)
class Connected:
    session: str


@dataclass(frozen=True)
class Disconnected:
    reason: str
    code: int | None = None


@dataclass(frozen=True)
class Reconnecting:
    attempt: int
    delay: float


@dataclass(frozen=True)
class Resumed:
    outcome: str  # "recovered" | "reset"
    reason: str | None = None
    lost: tuple[int, ...] = ()  # ids of this session's streams the resume reset (welcome `lost`)


Status = Connected | Disconnected | Reconnecting | Resumed


def backoff_delay(config: Config, level: int, rng: random.Random) -> float:
    """Delay before reconnecting at backoff `level` (1, 2, ...): level 1 is immediate (a
    dropped healthy connection usually reconnects at once), then base*2^(level-2), capped
    at backoff_max, minus up to `jitter` of it at random (never below (1-jitter) of it)."""
    if level <= 1:
        return 0.0
    delay = min(config.backoff_max, config.backoff_base * 2 ** min(level - 2, 60))
    return delay * (1.0 - config.backoff_jitter * rng.random())


class ClientStream:
    """One request stream. Chunks arrive exactly once, in order, across reconnects."""

    def __init__(self, client: "Client", sid: int) -> None:
        self._client = client
        self.stream_id = sid
        self._send, self._recv = trio.open_memory_channel[Any](math.inf)
        self._terminal: BaseException | None = None

    async def receive(self) -> str | bytes:
        """Next chunk; raises EndOfStream, StreamError, StreamReset or SessionClosed at the end."""
        if self._terminal is not None:
            raise self._terminal
        item = await self._recv.receive()
        if isinstance(item, BaseException):
            self._terminal = item
            raise item
        return item

    def __aiter__(self) -> "ClientStream":
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self.receive()
        except EndOfStream:
            raise StopAsyncIteration from None

    def _live(self) -> bool:
        """Still this client's stream for its id. Ids start again at 1 in a replacement session,
        so a handle of a reset stream must not reach the new stream that took its id (found by
        StreamMachine: an echo on a stale handle arrived in another stream)."""
        return self._client._streams.get(self.stream_id) is self

    async def send(self, msg: str | bytes) -> None:
        """Queue a message for the server app; delivered exactly once (waits if buffers are full).
        Raises ValueError once the stream is over (ended, failed or reset), and for a message
        the server would refuse (above max_message_size, or text that is not valid Unicode)."""
        await self._client._wait_capacity()
        if not self._live():
            raise ValueError(f"stream {self.stream_id} is over (it ended or was reset)")
        self._client.proto.send(self.stream_id, msg, trio.current_time())
        self._client._changed.notify()

    async def cancel(self) -> None:
        """Ask the server to cancel the app; survives reconnects. The stream then ends with
        StreamError('cancelled') (or EndOfStream if the app finished first). A no-op once the
        stream is over."""
        if self._live():
            self._client.proto.cancel(self.stream_id, trio.current_time())
            self._client._changed.notify()
        await trio.lowlevel.checkpoint()


class Client:
    def __init__(self, connect: Connect, config: Config = Config(), rng: random.Random | None = None,
                 *, host: str = "statemodel", resource: str = "/") -> None:
        # host/resource go into the WebSocket opening request (Host header, request path):
        # servers other than the reference may route on them.
        self._connect = connect
        self.host = host
        self.resource = resource
        self.config = config
        self.rng = rng if rng is not None else random.Random(secrets.randbits(64))
        self.proto = P.ClientProtocol(config)
        self._changed = Notifier()
        self._streams: dict[int, ClientStream] = {}
        self._status_send, self.status = trio.open_memory_channel[Status](math.inf)
        self._closed: SessionClosed | None = None
        self._closing = False
        self._fatal: str | None = None  # an exception of our own, contained (the session ends)
        # `attempt` counts tries since the last welcome (status events, max_reconnect_attempts);
        # `backoff_level` counts connections since the last *healthy* one and sets the delay,
        # so a server that welcomes then closes at once cannot make us reconnect in a loop.
        self.attempt = 0
        self.backoff_level = 0
        self._welcomed_at: float | None = None  # when this connection's welcome arrived

    # -- public API -----------------------------------------------------------------------
    @property
    def context(self) -> dict[str, Any]:
        return dict(self.proto.context)

    async def set_context(self, key: str, value: Any) -> None:
        self._check_open()
        self.proto.set_context(key, value, trio.current_time())
        self._changed.notify()
        await trio.lowlevel.checkpoint()

    async def open(self, payload: str | bytes) -> ClientStream:
        await self._wait_capacity()
        sid = self.proto.open(payload, trio.current_time())
        stream = self._streams[sid] = ClientStream(self, sid)
        self._changed.notify()
        return stream

    async def request(self, payload: str | bytes) -> AsyncIterator[str | bytes]:
        """Open a stream and iterate its chunks; leaving early cancels it on the server."""
        stream = await self.open(payload)
        try:
            async for chunk in stream:
                yield chunk
        finally:
            if stream._terminal is None and self._closed is None:  # abandoned mid-stream
                self.proto.cancel(stream.stream_id, trio.current_time())  # sync: safe at GC too
                self._changed.notify()

    @asynccontextmanager
    async def run(self) -> AsyncIterator["Client"]:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._maintain)
            try:
                yield self
            finally:
                self._closing = True
                link = self.proto.link
                if link is not None and link.ready:
                    link.fail(CloseCode.NORMAL, "client closed the session")
                    self._changed.notify()
                    with trio.move_on_after(self.config.close_timeout):
                        while self.proto.link is not None:
                            await self._changed.wait()
                nursery.cancel_scope.cancel()

    # -- internals ------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed is not None:
            raise self._closed

    async def _wait_capacity(self) -> None:
        while True:
            self._check_open()
            if self.proto.has_capacity():
                return
            await self._changed.wait()

    def _status(self, event: Status) -> None:
        self._status_send.send_nowait(event)

    def _dispatch(self) -> None:
        for ev in self.proto.drain_events():
            if isinstance(ev, P.Welcome):
                self.attempt = 0
                self._welcomed_at = trio.current_time()
                self._status(Connected(self.proto.session or ""))
                if ev.outcome != "new":
                    self._status(Resumed(ev.outcome, ev.reason, tuple(sorted(ev.lost))))
                continue
            stream = self._streams.get(getattr(ev, "sid", -1))
            if stream is None:
                continue
            if isinstance(ev, P.Chunk):
                stream._send.send_nowait(ev.data)
                continue
            if isinstance(ev, P.Ended):
                stream._send.send_nowait(EndOfStream(f"stream {ev.sid} ended"))
            elif isinstance(ev, P.Failed):
                stream._send.send_nowait(StreamError(ev.reason))
            elif isinstance(ev, P.Reset):
                stream._send.send_nowait(StreamReset(ev.reason))
            del self._streams[ev.sid]
        self._changed.notify()

    def _on_message(self, msg: bytes | str, now: float) -> None:
        self.proto.receive(msg, now)
        self._dispatch()

    def _on_timer(self, now: float) -> None:
        self.proto.on_timer(now)
        self._dispatch()

    async def _connect_once(self) -> tuple[int | None, str]:
        """One connection, start to end: (close code, reason); None = no code (retryable).
        A close code our own core decided (bad input from the server: final) stands however
        the transport then ends; an exception of our own is recorded in `_fatal`."""
        cfg = self.config
        try:
            with trio.fail_after(cfg.handshake_timeout):
                stream = await self._connect()
        except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
            return None, f"connect failed: {describe(exc)}"
        link: P.Link | None = None
        try:
            async with trio.open_nursery() as nursery:  # trio-websocket's reader task lives here
                ws = None
                # The library's opening handshake has no timeout and hangs if the transport
                # drops during it: bound it.
                with trio.move_on_after(cfg.handshake_timeout) as handshake:
                    ws = await websocket.connect(nursery, stream, self.host, self.resource,
                                                 message_queue_size=cfg.ws_message_queue_size,
                                                 max_message_size=cfg.ws_max_message_size,
                                                 receive_buffer_size=cfg.ws_receive_buffer_size)
                if ws is None:
                    nursery.cancel_scope.cancel()
                    if handshake.cancelled_caught:
                        return None, "WebSocket handshake timed out"
                    return None, "server closed the connection during the WebSocket handshake"
                link = self.proto.connect(trio.current_time())

                def on_error(exc: Exception) -> None:
                    self._fatal = self._fatal or describe(exc)
                    log.error("client session %s: internal error (contained; the session ends): %s",
                              (self.proto.session or "-")[:8], describe(exc))
                    log.debug("traceback", exc_info=exc)

                result = await run_link(ws, link, cfg, self._changed, self._on_message,
                                        self.proto.next_deadline, self._on_timer, on_error)
                nursery.cancel_scope.cancel()
                return result
        except Exception as exc:  # noqa: BLE001 - the WebSocket layer failed; our decision stands
            if link is not None and link.close is not None:
                return link.close
            return None, f"connection failed: {describe(exc)}"
        finally:
            self.proto.disconnected(trio.current_time())
            self._dispatch()
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)

    def _healthy(self) -> bool:
        """The connection that just ended was welcomed and stayed up `healthy_after`."""
        return self._welcomed_at is not None and trio.current_time() - self._welcomed_at >= self.config.healthy_after

    async def _maintain(self) -> None:
        while not self._closing:
            self._welcomed_at = None
            code, reason = await self._connect_once()
            self.backoff_level = 1 if self._healthy() else self.backoff_level + 1
            self._status(Disconnected(reason, code))
            if self._closing:
                break
            if self._fatal is not None:
                # Our own core or dispatch raised: its state cannot be trusted, so the
                # session ends here (streams fail with SessionClosed) instead of retrying.
                self._give_up(int(CloseCode.INTERNAL_ERROR), f"client internal error: {self._fatal}")
                return
            if not is_retryable(code):
                self._give_up(code, reason)
                return
            self.attempt += 1
            limit = self.config.max_reconnect_attempts
            if limit is not None and self.attempt > limit:
                self._give_up(code, f"gave up after {limit} reconnect attempts; last: {reason}")
                return
            delay = backoff_delay(self.config, self.backoff_level, self.rng)
            self._status(Reconnecting(self.attempt, delay))
            await timers.sleep(delay)
        self._give_up(int(CloseCode.NORMAL), "client closed the session")

    def _give_up(self, code: int | None, reason: str) -> None:
        self._closed = SessionClosed(code, reason)
        for stream in self._streams.values():
            stream._send.send_nowait(self._closed)
        self._streams.clear()
        self._changed.notify()


@asynccontextmanager
async def open_client(connect: Connect, config: Config = Config(), rng: random.Random | None = None,
                      *, host: str = "statemodel", resource: str = "/"):
    client = Client(connect, config, rng, host=host, resource=resource)
    async with client.run():
        yield client
