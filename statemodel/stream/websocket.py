"""Our WebSocket: trio-websocket 0.12.2 (pinned) with its known bugs worked around.

Each workaround names the upstream behaviour; tests/stream/test_stream_websocket.py pins each.

- **Ping while closing** (upstream issue #184, fix proposed in PR #198): a ping that arrives
  after we sent our close frame makes the library's reader task answer with a pong that
  wsproto refuses (``LocalProtocolError``: cannot send in state LOCAL_CLOSING). The reader
  task dies, the error escapes into the connection's nursery, and every such connection
  logged a traceback (a client's own close code was lost with it, so a final 4002 became
  a retry). Control frames that can no longer be sent are skipped: our close is under way.
- **WebSocket-level garbage** (invalid UTF-8 in a text message or close reason, a reserved
  opcode, a bad close code, ...): wsproto reports it as a ``CloseConnection`` event with
  1002/1007 that nobody sent, and trio-websocket neither sends a close frame nor says the
  close was its own: the peer saw a dropped connection and we took it for the peer's
  close (the session was kept for session_ttl). We send the close frame (RFC 6455 7.1.7)
  and record it in `local_error`, so the shell ends the session like other bad input.
  The library's own 1009 (message above ``max_message_size``) is recorded there too.
- **A peer that leaves during the opening handshake**: ``wrap_server_stream`` waits for a
  request that never comes (the reader saw EOF) until our handshake_timeout; in `accept`
  (and `connect`) the reader's end cancels the wait, which returns None at once.

Two shortcuts make a message cost about three task switches instead of about six (the
simulated network runs thousands of messages a second through this class):

- ``deliver_to(fn)`` hands each message to ``fn`` right in the library's reader task, where
  the library would put it in a channel for a second task to take (a yield and a wakeup).
- ``_send`` takes the library's send lock without a schedule point of its own when nobody
  holds or waits for it: ``send_all`` is the send's schedule point.
"""

from __future__ import annotations

import trio
from trio_websocket import CloseReason, ConnectionClosed, ConnectionRejected, WebSocketConnection, WebSocketRequest
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection, Event, Ping, Pong

from .errors import MAX_CLOSE_REASON, printable

# Which control events wsproto still lets us send in which state (wsproto.connection.send).
_SENDABLE = {
    Ping: (ConnectionState.OPEN,),
    Pong: (ConnectionState.OPEN,),
    CloseConnection: (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING),
}


class _Sink:
    """The library's message channel with a shortcut: while ``deliver`` is set, each message
    goes to it right in the library's reader task (no channel hop: the channel's send yields,
    and a second task had to wake to receive). Closing still closes the channel, so
    ``get_message()`` reports the end as before."""

    def __init__(self, channel) -> None:
        self.channel = channel
        self.deliver = None

    async def send(self, msg) -> None:
        deliver = self.deliver
        if deliver is None:
            await self.channel.send(msg)
        else:
            deliver(msg)

    async def aclose(self) -> None:
        await self.channel.aclose()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        await self.channel.aclose()


class WebSocket(WebSocketConnection):
    #: Set when *we* failed the connection for the peer's bad WebSocket input (1002, 1007,
    #: 1009): the close the reader reports is ours, not the peer's.
    local_error: CloseReason | None = None
    #: The server refused the opening handshake (client side).
    rejected: ConnectionRejected | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._send_channel = _Sink(self._send_channel)

    def limit_messages(self, size: int) -> None:
        """The largest message accepted from now on (small until the peer's hello is in)."""
        self._max_message_size = size

    def deliver_to(self, deliver) -> list:
        """Hand every message from now on to ``deliver(msg)`` in the reader task (None: back
        to ``get_message()``); returns the messages already queued for ``get_message()``."""
        queued = []
        if deliver is not None:
            while True:
                try:
                    queued.append(self._recv_channel.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    break
        self._send_channel.deliver = deliver
        return queued

    async def _send(self, event: Event) -> None:
        allowed = _SENDABLE.get(type(event))
        if allowed is not None and self._wsproto.state not in allowed:
            return  # upstream #184: a pong (or second close) while our close is under way
        # As upstream, but an uncontended lock is taken without a schedule point of its own:
        # send_all() is one, and the lock's was a second task switch for every message.
        data = self._wsproto.send(event)
        try:
            self._stream_lock.acquire_nowait()
        except trio.WouldBlock:
            await self._stream_lock.acquire()
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await self._abort_web_socket()
            assert self._close_reason is not None
            raise ConnectionClosed(self._close_reason) from None
        finally:
            self._stream_lock.release()

    async def _handle_close_connection_event(self, event: CloseConnection) -> None:
        if self._wsproto.state is ConnectionState.OPEN and self.local_error is None:
            # wsproto synthesised this close from bytes that failed to parse: fail the
            # connection ourselves, with a close frame the peer can read.
            reason = printable(event.reason or "", MAX_CLOSE_REASON)
            self.local_error = CloseReason(event.code, reason)
            self._close_reason = self.local_error  # from here on, sends raise ConnectionClosed
            try:
                await super()._send(CloseConnection(code=event.code, reason=reason))
            finally:
                await self._send_channel.aclose()  # get_message() raises ConnectionClosed
            return
        await super()._handle_close_connection_event(event)

    async def _handle_message_event(self, event) -> None:
        before = self._close_reason
        await super()._handle_message_event(event)
        after = self._close_reason
        if after is not before and after is not None and after.code == 1009 and not self._reader_running \
                and self.local_error is None:
            # the library closed 1009 itself (message above max_message_size); its reader
            # stopped, so nothing more will come: the closing handshake is over for us.
            self.local_error = after
            self._close_handshake.set()

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None:
        """As upstream, but after a `local_error` wait (the caller bounds it) for the peer's
        close or EOF before dropping TCP, so the peer can read our close frame."""
        if self.local_error is None:
            await super().aclose(code, None if reason is None else printable(reason, MAX_CLOSE_REASON))
            return
        await self._close_handshake.wait()
        await self._close_stream()


class _Reader:
    """The library's reader task, run so that a handshake waiter wakes when it ends."""

    def __init__(self) -> None:
        self.ended = False
        self._waiters: set[trio.CancelScope] = set()

    def end(self) -> None:
        self.ended = True
        for scope in self._waiters:
            scope.cancel()

    async def first(self, wait) -> bool:
        """Await `wait()` unless the reader ends first; True if `wait()` finished. One task:
        the reader's end cancels the wait (a race of two tasks in a nursery cost each
        handshake two task spawns and a nursery, on every reconnect)."""
        if self.ended:
            return False
        with trio.CancelScope() as scope:
            self._waiters.add(scope)
            try:
                await wait()
                return True
            finally:
                self._waiters.discard(scope)
        return False


def _start(nursery: trio.Nursery, ws: WebSocket) -> _Reader:
    """Run the library's reader task; `_Reader.first` waits for something unless it ends
    first (EOF, error, close). A server's refusal of the opening handshake ends it quietly
    (`ws.rejected`) instead of escaping into the caller's nursery."""
    state = _Reader()

    async def reader() -> None:
        try:
            await ws._reader_task()
        except ConnectionRejected as exc:
            ws.rejected = exc
        finally:
            state.end()

    nursery.start_soon(reader)
    return state


async def accept(nursery: trio.Nursery, stream: trio.abc.Stream, *, message_queue_size: int,
                 max_message_size: int, receive_buffer_size: int) -> WebSocket | None:
    """Server side of the opening handshake; None if the peer left before its request
    (unbounded like upstream: the caller bounds it with its handshake timeout)."""
    ws = WebSocket(stream, WSConnection(ConnectionType.SERVER), message_queue_size=message_queue_size,
                   max_message_size=max_message_size, receive_buffer_size=receive_buffer_size)
    reader = _start(nursery, ws)
    request: list[WebSocketRequest] = []

    async def get_request() -> None:
        request.append(await ws._get_request())

    if not await reader.first(get_request):
        return None
    await request[0].accept()
    return ws


async def connect(nursery: trio.Nursery, stream: trio.abc.Stream, host: str, resource: str, *,
                  message_queue_size: int, max_message_size: int, receive_buffer_size: int) -> WebSocket | None:
    """Client side of the opening handshake; None if the server left (or refused) before
    accepting. The caller bounds it."""
    ws = WebSocket(stream, WSConnection(ConnectionType.CLIENT), host=host, path=resource,
                   message_queue_size=message_queue_size, max_message_size=max_message_size,
                   receive_buffer_size=receive_buffer_size)
    reader = _start(nursery, ws)
    if not await reader.first(ws._open_handshake.wait):
        return None
    return ws
