"""A WebSocket client that writes RFC 6455 frames by hand, so it can write wrong ones.

`RawPeer` speaks through trio-websocket (wsproto), which refuses to send an invalid frame.
WebSocket-layer attacks need the bytes themselves: invalid UTF-8 in a text frame, a bad close
code or reason, reserved opcodes and RSV bits, unmasked client frames, control frames above
125 bytes or fragmented, stray continuations. `Wire` does the HTTP upgrade, sends any frame,
and reads the server's frames (server frames are never masked) until its close frame or the
end of the transport. Every await is bounded by ``timeout``.
"""

from __future__ import annotations

import struct

import trio

from statemodel.stream.errors import ProtocolError
from statemodel.stream.frames import decode

from .peer import Dial, raw_frame
from .verdict import DROPPED, TIMEOUT

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
UPGRADE = (b"GET / HTTP/1.1\r\nHost: statemodel\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def ws_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
             mask: bytes | None = b"\x00\x00\x00\x00", length: int | None = None) -> bytes:
    """One frame, exactly as asked: ``mask=None`` sends it unmasked (illegal from a client),
    ``rsv`` sets the three reserved bits, ``length`` lies about the payload length."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv & 0x7) << 4 | (opcode & 0xF)])
    bit = 0x80 if mask is not None else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", n)
    if mask is None:
        return head + payload
    return head + mask + masked(payload, mask)


def masked(payload: bytes, mask: bytes) -> bytes:
    """``payload`` XOR the repeated 4-byte ``mask`` (one big-int XOR: megabytes in milliseconds)."""
    n = len(payload)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


PONG = raw_frame({"t": "pong", "a": {}})


def _is_ping(message: bytes) -> bool:
    try:
        return decode(message, max_frame_size=1 << 30, max_header_size=1 << 30).t == "ping"
    except ProtocolError:
        return False


def close_payload(code: int | None, reason: bytes = b"") -> bytes:
    return b"" if code is None else struct.pack(">H", code) + reason


class Wire:
    """One upgraded connection, written frame by frame."""

    def __init__(self, stream: trio.abc.Stream, timeout: float, mask: bytes) -> None:
        self.stream = stream
        self.timeout = timeout
        self.mask = mask
        self._buf = bytearray()
        self.close_code: int | str | None = None  # int, DROPPED or TIMEOUT once known
        self.close_reason = b""
        self.messages: list[bytes] = []  # binary messages the server sent (protocol frames)
        self.answer_pings = True  # `receive_message` answers the server's protocol pings

    @classmethod
    async def open(cls, dial: Dial, timeout: float, mask: bytes = b"\x37\xfa\x21\x3d") -> "Wire":
        with trio.fail_after(timeout):
            stream = await dial()
        wire = cls(stream, timeout, mask)
        try:
            await wire.send_raw(UPGRADE)
            with trio.fail_after(timeout):
                while b"\r\n\r\n" not in wire._buf:
                    data = await stream.receive_some(4096)
                    if not data:
                        raise trio.BrokenResourceError("server closed during the HTTP upgrade")
                    wire._buf += data
            head, _, rest = bytes(wire._buf).partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                raise trio.BrokenResourceError(f"upgrade refused: {head[:40]!r}")
            wire._buf = bytearray(rest)
        except BaseException:
            await wire.aclose()
            raise
        return wire

    async def send_raw(self, data: bytes) -> None:
        with trio.fail_after(self.timeout):
            await self.stream.send_all(data)

    async def send(self, opcode: int, payload: bytes = b"", **kw) -> None:
        kw.setdefault("mask", self.mask)
        await self.send_raw(ws_frame(opcode, payload, **kw))

    async def send_message(self, data: bytes) -> None:
        """One protocol frame as one binary WebSocket message (what a client should send)."""
        await self.send(OP_BINARY, data)

    async def _fill(self, n: int) -> bool:
        while len(self._buf) < n:
            data = await self.stream.receive_some(65536)
            if not data:
                return False
            self._buf += data
        return True

    async def read_frame(self) -> tuple[int, bytes] | None:
        """The server's next frame as (opcode, payload); None once the transport ended."""
        if not await self._fill(2):
            return None
        b1 = self._buf[1]
        n, at = b1 & 0x7F, 2
        if n == 126:
            if not await self._fill(4):
                return None
            n, at = struct.unpack_from(">H", self._buf, 2)[0], 4
        elif n == 127:
            if not await self._fill(10):
                return None
            n, at = struct.unpack_from(">Q", self._buf, 2)[0], 10
        if b1 & 0x80:
            at += 4  # a masked server frame is the server's bug; skip its key, keep reading
        if not await self._fill(at + n):
            return None
        opcode, payload = self._buf[0] & 0xF, bytes(self._buf[at:at + n])
        del self._buf[:at + n]
        return opcode, payload

    async def wait_closed(self, timeout: float | None = None) -> int | str:
        """Read until the server's close frame (its code; 1005 if it carried none), the end of
        the transport (DROPPED), or ``timeout`` (TIMEOUT). Binary messages are kept."""
        if self.close_code is not None:
            return self.close_code
        with trio.move_on_after(self.timeout if timeout is None else timeout):
            try:
                while True:
                    frame = await self.read_frame()
                    if frame is None:
                        self.close_code = DROPPED
                        return DROPPED
                    opcode, payload = frame
                    if opcode == OP_CLOSE:
                        await self._closed_by_server(payload)
                        return self.close_code
                    if opcode == OP_BINARY:
                        self.messages.append(payload)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                self.close_code = DROPPED
                return DROPPED
        self.close_code = TIMEOUT
        return TIMEOUT

    async def receive_message(self) -> bytes | None:
        """The next binary message (control frames skipped); None if the server closed."""
        with trio.fail_after(self.timeout):
            while True:
                frame = await self.read_frame()
                if frame is None:
                    self.close_code = DROPPED
                    return None
                opcode, payload = frame
                if opcode == OP_CLOSE:
                    await self._closed_by_server(payload)
                    return None
                if opcode == OP_BINARY:
                    self.messages.append(payload)
                    if self.answer_pings and _is_ping(payload):
                        await self.send_message(PONG)  # as an honest client would: a slow
                        # server must not take a waiting probe for a dead peer (4008)
                    return payload

    async def _closed_by_server(self, payload: bytes) -> None:
        """Record the server's close, answer it as RFC 6455 asks (echo the code), and wait
        for the transport to end: the server ends the session only once its closing
        handshake is over, so a check made before that would race it."""
        self.close_code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
        self.close_reason = payload[2:]
        try:
            await self.send(OP_CLOSE, payload[:2])
            with trio.move_on_after(self.timeout):
                while await self.stream.receive_some(65536):
                    pass
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass

    async def hello(self, resume: dict | None = None) -> dict | None:
        """Send hello (raw JSON header); the welcome header, or None if the server closed."""
        await self.send_message(raw_frame({"t": "hello", "v": 1, **({"resume": resume} if resume else {})}))
        while True:
            msg = await self.receive_message()
            if msg is None:
                return None
            f = decode(msg, max_frame_size=1 << 30, max_header_size=1 << 30)
            if f.t == "welcome":
                return f.h

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(self.stream)
