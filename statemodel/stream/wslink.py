"""The trio half of one connection, shared by server and client: pump WebSocket messages
into a sans-IO core and its outbox back out, drive its timers, close with its code.

trio-websocket 0.12.2 has no timeouts of its own and its `aclose()` waits for the peer's
close frame, so every await here is bounded (`fail_after` / `move_on_after` / core timers).
"""

from __future__ import annotations

import math
from typing import Callable

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from statemodel.timers import Alarm, sleep_on, wait_event_until

from .config import Config
from .errors import MAX_CLOSE_REASON, CloseCode, printable
from .protocol import Link


class Notifier:
    """Wake waiters when shared state changed (acks, new frames, closes).

    `wait()` wakes on every change; `wait_until(cond)` only once `cond()` holds after one,
    checked here, so a server's writers do not all wake for each message of every
    connection (a task switch each) just to find their own outbox empty."""

    def __init__(self) -> None:
        self._event = trio.Event()
        self._until: dict[trio.Event, Callable[[], object]] = {}

    def notify(self) -> None:
        self._event.set()
        self._event = trio.Event()
        if self._until:
            for event, cond in list(self._until.items()):
                if cond():
                    del self._until[event]
                    event.set()

    async def wait(self) -> None:
        await self._event.wait()

    async def wait_or_until(self, deadline: float) -> bool:
        """`wait()`, ending at `deadline` at the latest (without a cancellation: see
        statemodel.timers); True when notified."""
        return await wait_event_until(self._event, deadline)

    async def wait_until(self, cond: Callable[[], object]) -> None:
        """Return once `cond()` is true (checked at once, then after each notify)."""
        if cond():
            await trio.lowlevel.checkpoint()
            return
        event = trio.Event()
        self._until[event] = cond
        try:
            await event.wait()
        finally:
            self._until.pop(event, None)  # cancelled: forget the condition


async def run_link(
    ws: WebSocketConnection,
    link: Link,
    config: Config,
    changed: Notifier,
    on_message: Callable[[bytes | str, float], None],
    deadline: Callable[[], float],
    on_timer: Callable[[float], None],
    on_error: Callable[[Exception], None],
) -> tuple[int | None, str]:
    """Run one established WebSocket until it ends; returns (close code, reason).

    `on_message` / `on_timer` feed the core (and dispatch its events); `link.close` set by
    the core (protocol error, dead peer, superseded) makes us close with that code. An
    unexpected exception from either (a bug: the core turns bad input into `link.close`)
    is contained: `on_error(exc)` reports it and the connection closes with 1011. Bad
    WebSocket-level input (`ws.local_error`: 1002, 1007, 1009) closes with its code.
    """
    result: list[tuple[int | None, str]] = []
    failed: list[Exception] = []  # an exception `deliver` contained

    def contained(exc: Exception) -> None:
        on_error(exc)
        link.fail(CloseCode.INTERNAL_ERROR, "internal error")
        changed.notify()

    def finish(code: int | None, reason: str) -> None:
        if not result:
            result.append((code, reason))
        nursery.cancel_scope.cancel()

    def deliver(msg: bytes | str) -> None:
        """One message, in the library's reader task (or from `reader` below)."""
        if link.close is not None or failed:
            return  # closing: read nothing more
        try:
            on_message(msg, trio.current_time())
        except Exception as exc:  # noqa: BLE001 - contained: 1011, reported once
            failed.append(exc)
            contained(exc)
            return
        d = deadline()
        if d < alarm.deadline:  # later moves can wait for the timer's next wakeup
            alarm.deadline = d
        changed.notify()

    async def reader() -> None:
        # Messages reach `deliver` in the library's own reader task where it offers that
        # (no channel hop and no task switch per message); this task then only waits for
        # the connection's end, which get_message() reports.
        direct = getattr(ws, "deliver_to", None)
        try:
            if direct is not None:
                for msg in direct(deliver):
                    deliver(msg)
            while link.close is None and not failed:
                msg = await ws.get_message()  # bounded by the core's dead_after timer
                deliver(msg)
        except ConnectionClosed as exc:
            local = getattr(ws, "local_error", None)
            if local is not None and link.close is None:
                # We failed the connection for the peer's bad WebSocket input (our close
                # frame is out): a final code like any bad input, closed by the writer.
                link.fail(local.code, local.reason or f"bad WebSocket input ({local.code})")
                changed.notify()
                return
            if link.close is not None:
                # We are closing, and the writer owns the close: it reports the code the core
                # decided (trio-websocket 0.12.2's aclose() records *our* close as 1000
                # whatever code we sent). Finishing here would cancel the writer's bounded
                # closing handshake -- aclose() closes the receive side first, which ends
                # get_message() at once -- and drop TCP before the peer read our close frame:
                # a peer sending at that moment got a write error and saw 1006 instead of the
                # code (a fenced client never learned it was superseded).
                return
            r = exc.reason
            code = int(r.code) if r is not None else int(CloseCode.ABNORMAL)
            default = "connection lost (1006)" if code == CloseCode.ABNORMAL else f"closed by peer ({code})"
            finish(code, (r.reason if r is not None else None) or default)

    async def writer() -> None:
        try:
            # One scope for the writer's life, armed per send and disarmed while idle (a scope
            # per batch was an enter and exit for nearly every message: ~5% of a sim run).
            with trio.CancelScope() as bound:
                while True:
                    # Re-check after every send: frames queued while we were inside
                    # send_message() must not wait for the next wakeup (lost-wakeup bug).
                    while link.outbox and link.close is None:
                        for data in link.take():
                            # A closed link sends nothing more: a peer declared dead behind a
                            # slow link would otherwise keep being fed its whole backlog (a
                            # 1 MiB queue at 20 KB/s held a dead connection open for 25 s).
                            if link.close is not None:
                                break
                            bound.deadline = trio.current_time() + config.send_timeout
                            await ws.send_message(data)
                    bound.deadline = math.inf
                    if link.close is not None:
                        break
                    await changed.wait_until(lambda: link.outbox or link.close is not None)
            if bound.cancelled_caught:
                raise trio.TooSlowError
            code, reason = link.close
            # Bounded: trio-websocket's aclose() waits for the peer's close frame forever.
            with trio.move_on_after(config.close_timeout):
                await ws.aclose(code, printable(reason, MAX_CLOSE_REASON))
            finish(code, reason)
        except ConnectionClosed as exc:
            r = exc.reason
            finish(int(r.code) if r else int(CloseCode.ABNORMAL), "connection closed while sending")
        except trio.TooSlowError:
            link.fail(CloseCode.PEER_DEAD, f"a send blocked for {config.send_timeout}s")
            finish(int(CloseCode.PEER_DEAD), "send timed out")

    async def timer() -> None:
        # Sleeps in `alarm` rather than waking on every `changed` (a wakeup per message):
        # the deadline only moves earlier when a message arrives (an ack falls due, the
        # handshake completes), and the reader pulls `alarm` in after each one; a deadline
        # that moved later just costs one idle wakeup.
        nonlocal alarm
        while True:
            alarm = Alarm(deadline())
            await sleep_on(alarm)  # no cancellation at the deadline (statemodel.timers)
            now = trio.current_time()
            if now >= deadline():
                try:
                    on_timer(now)
                except Exception as exc:  # noqa: BLE001 - contained: 1011, reported once
                    contained(exc)
                    return
                changed.notify()

    alarm = Alarm(deadline())
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            nursery.start_soon(writer)
            nursery.start_soon(timer)
    finally:
        if getattr(ws, "deliver_to", None) is not None:
            ws.deliver_to(None)
    if not result:  # cancelled from outside
        return (None, "cancelled")
    return result[0]
