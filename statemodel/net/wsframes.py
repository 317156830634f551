"""Incremental WebSocket frame-boundary scanner (RFC 6455), pure Python.

Frame-aware faults (split at a boundary, drop/delay close frames, swallow pongs,
truncate mid-frame) need to know where frames start and end in a byte stream that
arrives in arbitrary pieces. The scanner skips the HTTP upgrade (everything up to and
including the first ``\\r\\n\\r\\n``), then reads only frame *headers*; payloads are
skipped by length, so the cost is per frame, not per byte. Payloads are never
unmasked or copied.
"""

from __future__ import annotations

HTTP, HEADER, PAYLOAD = 0, 1, 2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
_END = b"\r\n\r\n"
MAX_HTTP_HEAD = 64 * 1024  # no blank line by then: not an HTTP upgrade, stop looking


class FrameScanner:
    """Feed bytes of one direction; :meth:`feed` returns segments of the chunk.

    A segment is ``(start, end, part, opcode, first)`` with ``part`` one of ``HTTP``,
    ``HEADER`` or ``PAYLOAD``, ``opcode`` the frame's opcode (``None`` for HTTP) and
    ``first`` true when the segment begins a frame.
    After each feed, ``frames`` lists ``(opcode, payload_length)`` of frame headers
    completed in that chunk (for traces).
    """

    __slots__ = ("in_http", "opaque", "_seen", "_tail", "_hdr", "_need", "_remaining", "_opcode", "frames")

    def __init__(self, http: bool = True) -> None:
        self.in_http = http
        self.opaque = False  # not a WebSocket stream: everything is one HTTP-like segment
        self._seen = 0
        self._tail = b""
        self._hdr = bytearray()  # header bytes collected so far (0 = at a frame boundary)
        self._need = 2  # header length needed, known once 2 bytes are in
        self._remaining = 0  # payload bytes still to come for the current frame
        self._opcode: int | None = None
        self.frames: list[tuple[int, int]] = []

    @property
    def at_boundary(self) -> bool:
        """True between frames (or still in the HTTP part)."""
        return self.in_http or (not self._hdr and self._remaining == 0)

    def feed(self, data: bytes | memoryview) -> list[tuple[int, int, int, int | None, bool]]:
        segments: list = []
        self.frames = []
        n = len(data)
        pos = 0
        if self.opaque:
            return [(0, n, HTTP, None, False)] if n else []
        if self.in_http:
            end = -1
            if self._tail:
                j = (self._tail + bytes(data[:3])).find(_END)
                if j >= 0:
                    end = j + 4 - len(self._tail)
            if end < 0:
                j = bytes(data).find(_END) if isinstance(data, memoryview) else data.find(_END)
                if j >= 0:
                    end = j + 4
            if end < 0:
                self._seen += n
                if self._seen > MAX_HTTP_HEAD:
                    self.opaque = True
                self._tail = (self._tail + bytes(data[-3:]))[-3:]
                return [(0, n, HTTP, None, False)] if n else []
            self.in_http = False
            self._tail = b""
            if end > 0:
                segments.append((0, end, HTTP, None, False))
            pos = end
        while pos < n:
            if self._remaining:
                take = min(self._remaining, n - pos)
                segments.append((pos, pos + take, PAYLOAD, self._opcode, False))
                self._remaining -= take
                pos += take
                continue
            hdr = self._hdr
            if not hdr and n - pos >= 2:
                # A whole header in this chunk (nearly always: a write is whole frames): read
                # it in place rather than a byte at a time (same segments, ~5x less CPU).
                b1 = data[pos + 1]
                length7 = b1 & 0x7F
                need = 2 + (2 if length7 == 126 else 8 if length7 == 127 else 0) + (4 if b1 & 0x80 else 0)
                if n - pos >= need:
                    opcode = data[pos] & 0x0F
                    if length7 == 126:
                        length = int.from_bytes(data[pos + 2:pos + 4], "big")
                    elif length7 == 127:
                        length = int.from_bytes(data[pos + 2:pos + 10], "big")
                    else:
                        length = length7
                    segments.append((pos, pos + need, HEADER, opcode, True))
                    self.frames.append((opcode, length))
                    pos += need
                    self._remaining = length
                    self._opcode = opcode if length else None
                    continue
            # collecting a header
            start = pos
            first = not hdr
            while pos < n and len(hdr) < self._need:
                hdr.append(data[pos])
                pos += 1
                if len(hdr) == 1:
                    self._opcode = hdr[0] & 0x0F  # known from the first byte on
                elif len(hdr) == 2:
                    length7 = hdr[1] & 0x7F
                    masked = hdr[1] & 0x80
                    self._need = 2 + (2 if length7 == 126 else 8 if length7 == 127 else 0) + (4 if masked else 0)
            segments.append((start, pos, HEADER, self._opcode, first))
            if len(hdr) == self._need:
                length7 = hdr[1] & 0x7F
                if length7 == 126:
                    length = int.from_bytes(hdr[2:4], "big")
                elif length7 == 127:
                    length = int.from_bytes(hdr[2:10], "big")
                else:
                    length = length7
                self.frames.append((self._opcode, length))
                self._remaining = length
                self._hdr = bytearray()
                self._need = 2
                if length == 0:
                    self._opcode = None
        return segments


def take_frame(buf: bytearray) -> tuple[bool, int, bytes] | None:
    """Remove one whole frame from the front of ``buf`` (after the HTTP upgrade) and return
    ``(fin, opcode, payload)`` with the payload unmasked; None while it is incomplete. For
    the wire views (the timeline's and the conformance tap's) that show what frames held."""
    if len(buf) < 2:
        return None
    fin, opcode = bool(buf[0] & 0x80), buf[0] & 0x0F
    masked, n, pos = buf[1] & 0x80, buf[1] & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, pos = int.from_bytes(buf[2:4], "big"), 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, pos = int.from_bytes(buf[2:10], "big"), 10
    mask = b""
    if masked:
        if len(buf) < pos + 4:
            return None
        mask, pos = bytes(buf[pos:pos + 4]), pos + 4
    if len(buf) < pos + n:
        return None
    payload = bytes(buf[pos:pos + n])
    del buf[:pos + n]
    if mask and n:
        key = (mask * (n // 4 + 1))[:n]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return fin, opcode, payload
