"""trio shell of the reference server: sessions outlive connections; app tasks outlive both.

Serves over any `trio.abc.Stream` (memory streams, the fault network) or TCP. All protocol
decisions are in `protocol.ServerProtocol`; this file moves bytes, runs timers and app tasks.
"""

from __future__ import annotations

import logging
import random
from contextlib import AsyncExitStack, aclosing
from typing import Any

import trio
from trio_websocket import wrap_server_stream

from . import protocol as P
from .app import App, Request
from .config import Config
from .errors import StreamError
from .wslink import Notifier, run_link

log = logging.getLogger(__name__)


class Server:
    def __init__(self, app: App, config: Config = Config(), rng: random.Random | None = None) -> None:
        self.app = app
        self.config = config
        self.proto = P.ServerProtocol(config, rng)
        self._changed = Notifier()
        self._apps: dict[tuple[str, int], tuple[trio.CancelScope, Request]] = {}
        self._nursery: trio.Nursery | None = None
        self._stack: AsyncExitStack | None = None
        self.connections = 0

    @property
    def epoch(self) -> str:
        return self.proto.epoch

    def stats(self) -> dict[str, int]:
        return {**self.proto.stats(), "app_tasks": len(self._apps), "connections": self.connections}

    # -- lifetime -------------------------------------------------------------------------
    async def __aenter__(self) -> "Server":
        self._stack = AsyncExitStack()
        self._nursery = await self._stack.enter_async_context(trio.open_nursery())
        self._nursery.start_soon(self._session_timer)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._nursery is not None and self._stack is not None
        self._nursery.cancel_scope.cancel()
        nursery_stack, self._stack, self._nursery = self._stack, None, None
        await nursery_stack.__aexit__(*exc)

    async def serve(self, listener: trio.abc.Listener, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Accept connections from any listener forever (cancel to stop)."""
        if self._nursery is None:
            async with self:
                await self.serve(listener, task_status=task_status)
            return
        async with listener:
            task_status.started()
            while True:
                stream = await listener.accept()
                self._nursery.start_soon(self._guarded, stream)

    async def serve_tcp(self, host: str, port: int, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Serve on TCP; `task_status.started(port)` reports the bound port (for port 0).
        Binding errors (address in use, ...) raise OSError before anything starts."""
        listeners = await trio.open_tcp_listeners(port, host=host)
        if self._nursery is None:
            async with self:
                await self._serve_all(listeners, task_status)
        else:
            await self._serve_all(listeners, task_status)

    async def _serve_all(self, listeners: list, task_status) -> None:
        task_status.started(listeners[0].socket.getsockname()[1])
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(self.serve, listener)

    async def _guarded(self, stream: trio.abc.Stream) -> None:
        """One bad connection must never take the server (and other sessions) down."""
        try:
            await self.handle_stream(stream)
        except Exception:  # noqa: BLE001 - logged, connection dropped, others unaffected
            log.exception("connection handler failed")

    # -- one connection -------------------------------------------------------------------
    async def handle_stream(self, stream: trio.abc.Stream) -> None:
        if self._nursery is None:
            raise RuntimeError("enter the server first: `async with server:` (or use server.serve(listener))")
        cfg = self.config
        conn: P.ServerConnection | None = None
        peer_code: int | None = None
        self.connections += 1
        try:
            async with trio.open_nursery() as nursery:  # trio-websocket's reader task lives here
                try:
                    with trio.fail_after(cfg.handshake_timeout):  # wrap_server_stream has no timeout
                        request = await wrap_server_stream(
                            nursery, stream, message_queue_size=cfg.ws_message_queue_size,
                            max_message_size=cfg.ws_max_message_size,
                            receive_buffer_size=cfg.ws_receive_buffer_size,
                        )
                        ws = await request.accept()
                except Exception:  # noqa: BLE001 - handshake failed or timed out: just drop it
                    nursery.cancel_scope.cancel()
                    return
                conn = self.proto.connect(trio.current_time())
                code, _ = await run_link(ws, conn, cfg, self._changed, self._on_message(conn),
                                         conn.next_deadline, self._on_timer(conn))
                # A 1000 we did not send ourselves: the client closed its session on purpose.
                peer_code = code if conn.close is None else None
                nursery.cancel_scope.cancel()
        finally:
            self.connections -= 1
            if conn is not None:
                self.proto.disconnected(conn, trio.current_time(), peer_code)
                self._dispatch()
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)

    def _on_message(self, conn: P.ServerConnection):
        def on_message(msg: bytes | str, now: float) -> None:
            conn.receive(msg, now)
            self._dispatch()
        return on_message

    def _on_timer(self, conn: P.ServerConnection):
        def on_timer(now: float) -> None:
            conn.on_timer(now)
            self._dispatch()
        return on_timer

    async def _session_timer(self) -> None:
        while True:
            d = self.proto.next_deadline()
            with trio.move_on_at(d):
                await self._changed.wait()
            now = trio.current_time()
            if now >= d:
                self.proto.on_timer(now)
                self._dispatch()

    # -- applications ---------------------------------------------------------------------
    def _dispatch(self) -> None:
        for ev in self.proto.drain_events():
            key = (ev.session, getattr(ev, "sid", 0))
            if isinstance(ev, P.Opened):
                assert self._nursery is not None
                # Register before the task runs: messages dispatched in the meantime (open and
                # data read in one go) are queued for the app, not dropped.
                self._apps[key] = (trio.CancelScope(), Request(self, ev.session, ev.sid, ev.payload))
                self._nursery.start_soon(self._run_app, ev, *self._apps[key])
            elif isinstance(ev, P.Message):
                if key in self._apps:
                    scope, request = self._apps[key]
                    if not request._queue(ev.data, self.config.app_backlog_bytes):
                        scope.cancel()  # the app stopped reading: fail the stream, keep the server bounded
            elif isinstance(ev, (P.Cancelled, P.StreamGone)):
                if key in self._apps:
                    self._apps[key][0].cancel()
        self._changed.notify()

    def _set_context(self, session: str, key: str, value: Any) -> None:
        self.proto.set_context(session, key, value, trio.current_time())
        self._changed.notify()

    async def _room(self, session: str) -> None:
        """Wait until the session may buffer another message (no checkpoint when it already
        may: the caller pushes right after, before another app can take the room)."""
        while not self.proto.has_capacity(session):
            await self._changed.wait()

    async def _run_app(self, ev: P.Opened, scope: trio.CancelScope, request: Request) -> None:
        key = (ev.session, ev.sid)
        error: str | None = None
        with scope:
            try:
                async with aclosing(self.app(request)) as chunks:
                    while True:
                        # Backpressure before pulling the next chunk, so a parked app holds
                        # no chunk in memory either.
                        await self._room(ev.session)
                        try:
                            chunk = await chunks.__anext__()
                        except StopAsyncIteration:
                            break
                        if not isinstance(chunk, (str, bytes)):
                            raise TypeError(f"app yielded {type(chunk).__name__}; chunks must be str or bytes")
                        # The app may have waited (e.g. for a client message) after the check
                        # above while another stream filled the buffer: check again, or every
                        # such stream overshoots the bound by a message (found by StreamMachine).
                        await self._room(ev.session)
                        if not self.proto.emit(ev.session, ev.sid, chunk, trio.current_time()):
                            break
                        chunk = None  # encoded into the replay buffer: don't hold a second copy
                        self._changed.notify()
            except StreamError as exc:
                error = exc.reason
            except Exception as exc:  # noqa: BLE001 - the client gets a sequenced error instead
                error = f"{type(exc).__name__}: {exc}"
        del self._apps[key]
        if scope.cancelled_caught:
            # "cancelled" is a no-op if the stream is already gone (lost/expired)
            error = "app_backlog" if request.overflowed else "cancelled"
        self.proto.finish(ev.session, ev.sid, trio.current_time(), error)
        self._changed.notify()
