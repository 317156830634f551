"""Close codes and exceptions of the resumable stream protocol (normative list in PROTOCOL.md)."""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    NORMAL = 1000  # session closed by its owner; final
    GOING_AWAY = 1001  # server shutting down; retryable
    WS_PROTOCOL_ERROR = 1002  # WebSocket-level garbage (reserved opcode, bad close frame, ...); final
    ABNORMAL = 1006  # transport vanished without a close frame; retryable
    WS_INVALID_DATA = 1007  # invalid UTF-8 in a text WebSocket message or close reason; final
    WS_MESSAGE_TOO_BIG = 1009  # WebSocket message above the receiver's limit; final
    INTERNAL_ERROR = 1011  # unexpected bug in the peer (contained); retryable
    TRY_AGAIN_LATER = 1013  # server out of a shared resource (pre-hello slots); retryable
    MALFORMED_FRAME = 4000  # undecodable/truncated frame or text WebSocket message; final
    UNSUPPORTED_VERSION = 4001  # hello.v is not 1; final
    PROTOCOL_VIOLATION = 4002  # valid frame at the wrong time (gap, ack beyond sent, ...); final
    FORGED_TOKEN = 4003  # resume of a known session with the wrong token; final
    FRAME_TOO_LARGE = 4004  # encoded frame above max_frame_size; final
    MESSAGE_TOO_LARGE = 4005  # reassembled message above max_message_size; final
    SUPERSEDED = 4006  # a newer connection took over this session (fencing); retryable
    HANDSHAKE_TIMEOUT = 4007  # no hello/welcome within handshake_timeout; retryable
    PEER_DEAD = 4008  # nothing received for dead_after; retryable
    SERVER_BUSY = 4009  # max_sessions reached; retryable


RETRYABLE = frozenset(
    {
        CloseCode.GOING_AWAY,
        CloseCode.ABNORMAL,
        CloseCode.INTERNAL_ERROR,
        1012,  # service restart
        CloseCode.TRY_AGAIN_LATER,
        CloseCode.HANDSHAKE_TIMEOUT,
        CloseCode.PEER_DEAD,
        CloseCode.SERVER_BUSY,
        # The client runs one connection at a time, so a 4006 on it means a delayed hello of
        # one of its own earlier attempts won the race (found by StreamMachine: c2s latency,
        # then a drop; the client gave the session up). Reconnecting fences the stale one.
        CloseCode.SUPERSEDED,
    }
)


def is_retryable(code: int | None) -> bool:
    """None (no close code at all: connect refused, reset) is retryable."""
    return code is None or code in RETRYABLE


#: Longest close reason a WebSocket close frame can carry (125 bytes minus the 2-byte code).
MAX_CLOSE_REASON = 123


def printable(text: object, limit: int) -> str:
    """`text` made safe to send or log: at most `limit` UTF-8 bytes, cut on a character
    boundary, lone surrogates replaced. Text that carries peer input (close reasons, error
    reasons, log lines) goes through here, so no input can make encoding raise."""
    s = text if isinstance(text, str) else str(text)
    data = s.encode("utf-8", "replace")  # lone surrogates -> "?"
    if len(data) > limit:
        data = data[:limit]
    return data.decode("utf-8", "ignore")  # drops a character cut in half


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes on a character boundary, every character
    kept as it is (lone surrogates too: JSON carries them escaped)."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    cut = limit
    while cut > 0 and (data[cut] & 0xC0) == 0x80:  # inside a character
        cut -= 1
    return data[:cut].decode("utf-8", "surrogatepass")


def describe(exc: BaseException, limit: int = 200, *, one_line: bool = True, exact: bool = False) -> str:
    """``Type: message`` (in one line for logs), even for an exception whose ``__str__``
    raises; `exact` keeps every character (for an `error` item), else `printable`."""
    try:
        msg = str(exc)
    except Exception:  # noqa: BLE001 - a hostile or broken __str__ must not take us down
        msg = "<unprintable>"
    text = f"{type(exc).__name__}: {msg}"
    if one_line:
        text = " ".join(text.split())
    return clip(text, limit) if exact else printable(text, limit)


class ProtocolError(Exception):
    """The peer broke the protocol; the connection must close with `code`."""

    def __init__(self, code: CloseCode, message: str) -> None:
        super().__init__(f"{code.name} ({int(code)}): {message}")
        self.code = code
        self.message = message


class StreamReset(Exception):
    """The stream's data could not be recovered (session reset, replay evicted, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"stream reset: {reason}")
        self.reason = reason


class StreamError(Exception):
    """The server application failed the stream (sequenced `error` item), or an app raises
    it to end its stream with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"stream error: {reason}")
        self.reason = reason


class SessionClosed(Exception):
    """The client gave up: a final close code, or max_reconnect_attempts reached."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"session closed ({code}): {reason}")
        self.code = code
        self.reason = reason


class EndOfStream(Exception):
    """The server application finished the stream normally (sequenced `end`)."""
