"""trio shell of the reference server: sessions outlive connections; app tasks outlive both.

Serves over any `trio.abc.Stream` (memory streams, the fault network) or TCP. All protocol
decisions are in `protocol.ServerProtocol`; this file moves bytes, runs timers and app tasks.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import random
from contextlib import AsyncExitStack
from typing import Any

import trio
from trio_websocket import ConnectionClosed

from . import protocol as P
from . import websocket
from .app import App, Request
from .config import Config
from .errors import StreamError, describe, printable
from .wslink import Notifier, run_link

log = logging.getLogger(__name__)

#: accept(2) errors that mean the process or system is out of a resource, not that the
#: listener is broken: wait and accept again, as trio's serve_listeners does.
ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
ACCEPT_RETRY = 0.1  # seconds between accept attempts while out of a resource (trio's value)

#: Server.stats() counters (always present, so a soak can diff them).
COUNTERS = (
    "closed_bad_input",  # connections we closed for the peer's bad input (4000-4005, 1002, 1007, 1009)
    "closed_internal_error",  # connections we closed 1011 after containing our own exception
    "internal_errors",  # exceptions contained anywhere (connections, app tasks, timers): bugs
    "handshakes_failed",  # transports dropped before the WebSocket handshake completed
    "accept_errors",  # accept(2) failed for lack of a resource (EMFILE, ENFILE, ENOMEM, ENOBUFS)
    "prehello_dropped",  # connections dropped from the pre-hello budget (the oldest, beyond the count)
)


def _app_error(exc: Exception) -> str:
    """The `error` reason for an app that raised: `StreamError(reason)` -> reason, anything
    else -> "Type: message" (PROTOCOL.md §8), whatever its ``__str__`` does."""
    if isinstance(exc, StreamError):
        return exc.reason
    return describe(exc, P.MAX_ERROR_REASON, one_line=False, exact=True)


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
        self.counters = dict.fromkeys(COUNTERS, 0)
        self._ids = itertools.count(1)
        self._prehello: dict[int, trio.CancelScope] = {}  # connection id -> scope, oldest first
        self._backlogs: dict[str, int] = {}  # session -> client bytes its apps have not read yet

    @property
    def epoch(self) -> str:
        return self.proto.epoch

    def stats(self) -> dict[str, int]:
        return {**self.proto.stats(), "app_tasks": len(self._apps), "connections": self.connections,
                "prehello": len(self._prehello), "app_backlog_bytes": sum(self._backlogs.values()),
                **self.counters}

    def _internal_error(self, where: str, exc: BaseException) -> None:
        """A bug of ours, contained: one log line (the traceback only at DEBUG), counted."""
        self.counters["internal_errors"] += 1
        log.error("%s: internal error (contained): %s", where, describe(exc))
        log.debug("%s: traceback", where, exc_info=exc)

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
            starved = False
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    if exc.errno not in ACCEPT_CAPACITY_ERRNOS:
                        raise
                    # Out of file descriptors (or memory): the connections we hold are
                    # fine, so keep serving them and accept again shortly. Logged once per
                    # episode, counted every time.
                    self.counters["accept_errors"] += 1
                    if not starved:
                        log.warning("accept failed with %s (%s); retrying every %ss until it succeeds",
                                    errno.errorcode[exc.errno], os.strerror(exc.errno), ACCEPT_RETRY)
                    starved = True
                    await trio.sleep(ACCEPT_RETRY)
                    continue
                if starved:
                    log.warning("accept works again")
                    starved = False
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
        except Exception as exc:  # noqa: BLE001 - logged once, connection dropped, others unaffected
            self._internal_error("connection handler", exc)

    # -- one connection -------------------------------------------------------------------
    async def handle_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one transport until it ends. Failures are contained here: bad input gets
        its close code (logged at INFO), our own exceptions 1011 (logged once at ERROR);
        both end the session and are counted in `stats()`."""
        if self._nursery is None:
            raise RuntimeError("enter the server first: `async with server:` (or use server.serve(listener))")
        cfg = self.config
        conn: P.ServerConnection | None = None
        peer_code: int | None = None
        cid = next(self._ids)
        start = trio.current_time()
        self.connections += 1
        # Until its hello is accepted a connection is in the pre-hello budget (count: the
        # oldest is dropped beyond it; bytes: hello-sized messages only; time: one
        # handshake_timeout from accept for the HTTP upgrade and the hello together).
        prehello = self._prehello[cid] = trio.CancelScope()
        if len(self._prehello) > cfg.prehello_max_connections:
            self._drop_oldest_prehello()
        try:
            with prehello:
                async with trio.open_nursery() as nursery:  # trio-websocket's reader task lives here
                    ws = None
                    with trio.move_on_after(cfg.handshake_timeout):  # the library has no timeout
                        try:
                            ws = await websocket.accept(nursery, stream, message_queue_size=cfg.ws_message_queue_size,
                                                        max_message_size=cfg.prehello_message_size,
                                                        receive_buffer_size=cfg.ws_receive_buffer_size)
                        except ConnectionClosed:
                            pass  # the peer left while we answered its upgrade request
                    if ws is None:  # no WebSocket: timed out, not HTTP, or the peer left
                        self.counters["handshakes_failed"] += 1
                        nursery.cancel_scope.cancel()
                        return
                    conn = self.proto.connect(start)  # the hello deadline counts from accept too

                    def on_message(msg: bytes | str, now: float) -> None:
                        conn.receive(msg, now)
                        if cid in self._prehello and conn.session is not None:
                            del self._prehello[cid]  # hello accepted: a session's full limits now
                            ws.limit_messages(cfg.ws_max_message_size)
                        self._dispatch()

                    def on_error(exc: Exception) -> None:
                        self._internal_error(f"connection {cid}", exc)

                    code, reason = await run_link(ws, conn, cfg, self._changed, on_message,
                                                  conn.next_deadline, self._on_timer(conn), on_error)
                    # A 1000 we did not send ourselves: the client closed its session on purpose.
                    peer_code = code if conn.close is None else None
                    nursery.cancel_scope.cancel()
            if prehello.cancelled_caught:
                return  # dropped from the pre-hello budget (counted there)
            if conn.close is not None and conn.close[0] in P.FINAL_BAD_INPUT:
                self.counters["closed_bad_input"] += 1
                log.info("connection %d: closed %d for bad input: %s", cid, conn.close[0], printable(conn.close[1], 200))
            elif conn.close is not None and conn.close[0] == P.CloseCode.INTERNAL_ERROR:
                self.counters["closed_internal_error"] += 1
        finally:
            self.connections -= 1
            self._prehello.pop(cid, None)
            try:
                if conn is not None:
                    self.proto.disconnected(conn, trio.current_time(), peer_code)
                    self._dispatch()
            finally:
                with trio.CancelScope(shield=True):
                    await trio.aclose_forcefully(stream)

    def _drop_oldest_prehello(self) -> None:
        """Over the pre-hello budget: drop the connection that has waited longest (an
        honest handshake takes a round trip; a flood of idle or half-open connections
        cannot hold more than the budget of descriptors and buffers)."""
        oldest = next(iter(self._prehello))
        self._prehello.pop(oldest).cancel()
        self.counters["prehello_dropped"] += 1

    def _on_timer(self, conn: P.ServerConnection):
        def on_timer(now: float) -> None:
            conn.on_timer(now)
            self._dispatch()
        return on_timer

    async def _session_timer(self) -> None:
        while True:
            try:
                d = self.proto.next_deadline(trio.current_time())
                await self._changed.wait_or_until(d)
                now = trio.current_time()
                if now >= d:
                    self.proto.on_timer(now)
                    self._dispatch()
            except Exception as exc:  # noqa: BLE001 - contained; retried after a pause, not in a loop
                self._internal_error("session timer", exc)
                await trio.sleep(1.0)

    # -- applications ---------------------------------------------------------------------
    def _dispatch(self) -> None:
        for ev in self.proto.drain_events():
            key = (ev.session, getattr(ev, "sid", 0))
            if isinstance(ev, P.Opened):
                assert self._nursery is not None
                # Register before the task runs: messages dispatched in the meantime (open and
                # data read in one go) are queued for the app, not dropped.
                self._apps[key] = (trio.CancelScope(), Request(self, ev.session, ev.sid, ev.payload, self._backlogs))
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
        may: the caller pushes right after, before another app can take the room). A wait
        is reported to the core: a connected session waiting for the shared pool makes the
        server shed holders that stopped reading (PROTOCOL.md §6 "Pressure")."""
        if self.proto.has_capacity(session):
            return
        self.proto.want_room(session, 1)
        self._changed.notify()  # the session timer re-reads its deadline
        try:
            while not self.proto.has_capacity(session):
                await self._changed.wait()
        finally:
            self.proto.want_room(session, -1)
            self._changed.notify()  # sessions that yielded to this one may produce again

    async def _run_app(self, ev: P.Opened, scope: trio.CancelScope, request: Request) -> None:
        """One stream's app task. Everything the app does is contained in the stream (an
        `error` item); a failure of our own machinery is contained too (logged once, the
        stream fails with `internal_error`): nothing here may end the server's nursery."""
        try:
            await self._app_stream(ev, scope, request)
        except Exception as exc:  # noqa: BLE001 - our bug; the other streams and sessions go on
            self._internal_error(f"stream {ev.sid} of session {ev.session[:8]}", exc)
            self._apps.pop((ev.session, ev.sid), None)
            request._release()
            try:
                self.proto.finish(ev.session, ev.sid, trio.current_time(), "internal_error")
            except Exception as again:  # noqa: BLE001
                self._internal_error(f"stream {ev.sid} of session {ev.session[:8]}: finish", again)
            self._changed.notify()

    async def _app_stream(self, ev: P.Opened, scope: trio.CancelScope, request: Request) -> None:
        key = (ev.session, ev.sid)
        error: str | None = None
        with scope:
            try:
                chunks = self.app(request)
            except Exception as exc:  # noqa: BLE001 - the app failed: a sequenced error
                error = _app_error(exc)
            else:
                try:
                    while error is None:
                        # Backpressure before pulling the next chunk, so a parked app holds
                        # no chunk in memory either.
                        await self._room(ev.session)
                        try:
                            chunk = await chunks.__anext__()
                        except StopAsyncIteration:
                            break
                        except Exception as exc:  # noqa: BLE001 - the app failed: a sequenced error
                            error = _app_error(exc)
                            break
                        if not isinstance(chunk, (str, bytes)):
                            error = f"TypeError: app yielded {type(chunk).__name__}; chunks must be str or bytes"
                            break
                        if not P.message_fits(chunk, self.config.max_message_size):
                            # The client would close 4005 and lose the session: fail the stream.
                            error = (f"message_too_large: the app yielded a message above max_message_size "
                                     f"({self.config.max_message_size} bytes)")
                            break
                        # The app may have waited (e.g. for a client message) after the check
                        # above while another stream filled the buffer: check again, or every
                        # such stream overshoots the bound by a message (found by StreamMachine).
                        await self._room(ev.session)
                        # Our machinery from here: its exceptions are ours (see _run_app),
                        # except text UTF-8 cannot carry (a lone surrogate, e.g. echoed from
                        # a client): the app's chunk, refused before anything is buffered.
                        try:
                            emitted = self.proto.emit(ev.session, ev.sid, chunk, trio.current_time())
                        except UnicodeEncodeError as exc:
                            error = f"bad_chunk: the app yielded text that is not valid Unicode ({exc.reason} at {exc.start})"
                            break
                        if not emitted:
                            break
                        chunk = None  # encoded into the replay buffer: don't hold a second copy
                        self._changed.notify()
                finally:
                    aclose = getattr(chunks, "aclose", None)
                    if aclose is not None:
                        try:
                            await aclose()  # the app's own cleanup (finally blocks)
                        except Exception as exc:  # noqa: BLE001 - the app failed while closing
                            error = error or _app_error(exc)
        del self._apps[key]
        request._release()
        if scope.cancelled_caught:
            # "cancelled" is a no-op if the stream is already gone (lost/expired)
            error = "app_backlog" if request.overflowed else "cancelled"
        self.proto.finish(ev.session, ev.sid, trio.current_time(), error)
        self._changed.notify()
