"""Close codes and exceptions of the resumable stream protocol (normative list in PROTOCOL.md)."""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    NORMAL = 1000  # session closed by its owner; final
    GOING_AWAY = 1001  # server shutting down; retryable
    ABNORMAL = 1006  # transport vanished without a close frame; retryable
    INTERNAL_ERROR = 1011  # unexpected server bug; retryable
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
        1013,  # try again later
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
