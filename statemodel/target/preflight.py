"""Is the target testable at all? Checked once, before any example runs.

Without this, a URL where nothing listens fuzzed for six minutes and reported "recovery
within bound violated": a dead or foreign server looked like a protocol bug. ``preflight``
walks a ws:// target through everything the tester needs, one bounded step at a time, and
raises ``TargetUnavailable`` with one line naming the URL and the step that failed:

1. TCP connect (a few attempts: a server may still be starting), TLS for wss://;
2. the WebSocket opening handshake at the URL's path;
3. PROTOCOL.md's ``hello``/``welcome``;
4. one tiny request to the scripted app (appendix A): ``echo`` then ``end`` on stream 1.

The reference target on netns checks that a namespace can really be made here.
"""

from __future__ import annotations

import json

import h11
import trio
import wsproto.utilities
from trio_websocket import ConnectionClosed, ConnectionRejected, HandshakeError, wrap_client_stream

from statemodel.stream.errors import ProtocolError
from statemodel.stream.frames import Frame, decode, encode

PROBE_TEXT = "statemodel preflight"
PROBE_REQUEST = {"op": "batch", "commands": [{"op": "echo", "data": PROBE_TEXT}, {"op": "end"}]}
MAX_MESSAGE = 1 << 22


class TargetUnavailable(RuntimeError):
    """The target cannot be tested (unreachable, not a PROTOCOL.md server, no scripted app):
    an infrastructure error (exit 2), never a finding about the server."""


def preflight(options, *, timeout: float = 5.0, attempts: int = 3) -> None:
    """Raise ``TargetUnavailable`` unless ``options.target`` can be tested over
    ``options.transport``. Every step is bounded by ``timeout`` seconds; a refused connect is
    retried ``attempts`` times in all. Factory targets are the user's code: not probed."""
    from statemodel.target.external import is_ws_url

    spec = options.target
    if is_ws_url(spec):
        trio.run(_probe_url, spec, timeout, attempts)
    elif spec == "reference" and options.transport == "netns":
        _probe_netns()


def _probe_netns() -> None:
    from statemodel.net.netns import NetnsNetwork, unavailable_reason

    reason = unavailable_reason()
    if reason:
        raise TargetUnavailable(f"the reference target on netns: {reason}")
    try:
        with NetnsNetwork(0):
            pass
    except (OSError, RuntimeError, ValueError) as exc:
        raise TargetUnavailable(f"the reference target on netns: cannot set up a namespace: {exc}") from None


def _why(exc: OSError) -> str:
    """trio's "all attempts to connect ... failed" hides the errno in its cause: show it."""
    cause = exc.__cause__
    while isinstance(cause, BaseExceptionGroup) and cause.exceptions:
        cause = cause.exceptions[-1]
    return str(cause) if cause is not None else str(exc)


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


async def _probe_url(url: str, timeout: float, attempts: int) -> None:
    from statemodel.target.external import parse_ws_url

    tls, host, port, host_header, resource, _ = parse_ws_url(url)

    def fail(what: str) -> TargetUnavailable:
        return TargetUnavailable(f"target {url}: {what}")

    stream = None
    for attempt in range(1, attempts + 1):
        try:
            with trio.fail_after(timeout):
                stream = await trio.open_tcp_stream(host, port)
            break
        except (OSError, trio.TooSlowError) as exc:
            why = f"timed out after {timeout:g} s" if isinstance(exc, trio.TooSlowError) else _why(exc)
            if attempt == attempts:
                raise fail(f"cannot connect to {host}:{port} ({attempts} attempts; last: {why})") from None
            await trio.sleep(0.2 * attempt)
    if tls:
        import ssl

        stream = trio.SSLStream(stream, ssl.create_default_context(), server_hostname=host)
        try:
            with trio.fail_after(timeout):
                await stream.do_handshake()
        except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
            await trio.aclose_forcefully(stream)
            raise fail(f"TLS handshake with {host}:{port} failed: {exc!r}") from None
    try:
        async with trio.open_nursery() as nursery:
            try:
                await _converse(nursery, stream, host_header, resource, timeout, fail)
            finally:
                nursery.cancel_scope.cancel()
    except BaseException as exc:  # noqa: BLE001 - one line for any way the probe can fail
        leaf = _leaf(exc)
        if isinstance(leaf, TargetUnavailable):
            raise leaf from None
        if isinstance(leaf, ConnectionRejected):
            raise fail(f"WebSocket handshake refused with HTTP {leaf.status_code} at path {resource!r}") from None
        if isinstance(leaf, HandshakeError):
            raise fail(f"not a WebSocket server: handshake failed ({leaf!r})") from None
        if isinstance(leaf, (OSError, trio.BrokenResourceError, trio.ClosedResourceError)):
            raise fail(f"the connection broke during the check: {leaf!r}") from None
        if isinstance(leaf, (h11.ProtocolError, wsproto.utilities.ProtocolError)):
            # trio-websocket's reader task raises h11's error out of the nursery (a traceback,
            # exit 1, before): after the server's bytes were not HTTP (the remote error is its
            # context), or when our own request cannot carry the URL (a space in the path)
            remote = (h11.RemoteProtocolError, wsproto.utilities.RemoteProtocolError)
            chain, seen = [], leaf
            while seen is not None and len(chain) < 8:
                chain.append(seen)
                seen = seen.__context__
            if any(isinstance(e, remote) for e in chain):
                raise fail(f"not a WebSocket server: its answer to the handshake is not HTTP ({leaf})") from None
            raise fail(f"cannot send a WebSocket handshake for this URL: {leaf}") from None
        if isinstance(leaf, UnicodeEncodeError):  # h11 writes the request line in ASCII
            raise fail(f"cannot send a WebSocket handshake for this URL: its path must be ASCII "
                       f"(percent-encode the rest, e.g. é as %C3%A9)") from None
        raise
    finally:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)


async def _converse(nursery, stream, host_header: str, resource: str, timeout: float, fail) -> None:
    try:
        with trio.fail_after(timeout):
            ws = await wrap_client_stream(nursery, stream, host_header, resource, max_message_size=MAX_MESSAGE)
    except trio.TooSlowError:
        # trio-websocket 0.12.2 also waits here when the server closes the connection or answers
        # HTTP without upgrading (HTTP/1.0 200): "no answer" was untrue for those
        raise fail(f"the WebSocket handshake did not complete within {timeout:g} s (no answer, the "
                   f"connection closed, or an HTTP answer without the upgrade): not a WebSocket server?") from None

    async def next_frame(waiting_for: str) -> Frame:
        try:
            with trio.fail_after(timeout):
                message = await ws.get_message()
        except trio.TooSlowError:
            raise fail(f"does not speak PROTOCOL.md: no {waiting_for} within {timeout:g} s") from None
        except ConnectionClosed as exc:
            raise fail(f"does not speak PROTOCOL.md: the server closed the WebSocket "
                       f"({exc.reason.code} {exc.reason.reason or ''}) while we waited for {waiting_for}") from None
        if isinstance(message, str):
            raise fail(f"does not speak PROTOCOL.md: a text message ({message[:40]!r}) where {waiting_for} "
                       "should come (frames are binary messages, §2)")
        try:
            return decode(message, max_frame_size=MAX_MESSAGE)
        except ProtocolError as exc:
            raise fail(f"does not speak PROTOCOL.md: undecodable frame while waiting for {waiting_for}: {exc}") from None

    await ws.send_message(encode(Frame("hello", {"v": 1})))
    while (frame := await next_frame("a welcome")).t in ("ping", "pong", "ack"):
        pass
    if frame.t != "welcome":
        raise fail(f"does not speak PROTOCOL.md: answered hello with {frame.t!r}, not 'welcome'")
    await ws.send_message(encode(Frame("open", {"s": 1, "q": 1, "k": "t"}, json.dumps(PROBE_REQUEST).encode())))
    parts: list[bytes] = []
    echoed = None
    while echoed in (None, PROBE_TEXT):
        frame = await next_frame("the scripted app's answer (PROTOCOL.md appendix A)")
        if frame.t == "ping":
            await ws.send_message(encode(Frame("pong", {"a": {}})))
            continue
        if frame.t not in ("data", "end", "error") or frame.h.get("s") != 1:
            continue
        if frame.t == "error":
            raise fail(f"the scripted app (PROTOCOL.md appendix A) is not served here: an echo request "
                       f"failed with {frame.h.get('reason')!r}")
        if frame.t == "data":
            parts.append(bytes(frame.payload))
            if frame.h.get("fin"):
                echoed = b"".join(parts).decode("utf-8", "replace") if echoed is None else f"{echoed!r} and more"
                parts = []
            continue
        break  # end
    if echoed != PROBE_TEXT:
        raise fail(f"the scripted app (PROTOCOL.md appendix A) is not served here: echo {PROBE_TEXT!r} "
                   f"came back as {echoed!r}")
    with trio.move_on_after(timeout):
        await ws.aclose()  # 1000: this session is over (§10)
