"""The wire as the timeline shows it: protocol frames decoded from the bytes a run exchanged.

``WireTap`` is handed every chunk an endpoint wrote (``send``) or read (``recv``) on a link
(``Trace.tap``, set only while a run is recorded for a report). Per link and direction it
skips the HTTP upgrade, parses RFC 6455 frames (unmasking client frames, joining
continuations) and decodes each binary message as a PROTOCOL.md frame:
``u32 header length | JSON header | payload``. It never validates: a malformed frame is
shown as what it is. Bytes arrive in order on a link, and what a receiver reads is a prefix
of what the sender wrote (faults drop the tail or close frames, never the middle of the
protocol stream), so the k-th message read is the k-th written: that is how each frame gets
its arrival time, or none (lost with its link).
"""

from __future__ import annotations

import json
import struct
from typing import Any

from statemodel.net.wsframes import take_frame

OPCODES = {0x0: "continuation", 0x1: "text", 0x2: "binary", 0x8: "close", 0x9: "ping", 0xA: "pong"}
MAX_HTTP = 64 * 1024
MAX_SUMMARY = 160


def _short(value: Any, limit: int = 12) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _seqs(value: Any) -> str:
    if not isinstance(value, dict) or not value:
        return "{}"
    return "{" + ", ".join(f"{k}:{v}" for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))) + "}"


def describe_frame(header: dict[str, Any], payload_len: int) -> str:
    """One line for a protocol frame: type, stream, seq/ack and the resume/welcome contents."""
    t = str(header.get("t", "?"))
    parts = [t]
    if "s" in header:
        parts.append(f"s={header['s']}")
    if "q" in header:
        parts.append(f"q={header['q']}")
    if t == "data":
        parts.append(("fin" if header.get("fin") else "part") + f" k={header.get('k')}")
    elif t == "error":
        parts.append(f"reason={_short(header.get('reason'), 24)}")
    elif t == "ctx":
        parts.append(f"{header.get('key')}={_short(header.get('value'))}")
    elif t == "hello":
        resume = header.get("resume")
        if isinstance(resume, dict):
            parts.append(f"resume session={_short(resume.get('session'), 8)} epoch={_short(resume.get('epoch'), 8)} "
                         f"recv={_seqs(resume.get('recv'))}")
        else:
            parts.append("new session")
    elif t == "welcome":
        parts.append(f"outcome={header.get('outcome')} session={_short(header.get('session'), 8)} "
                     f"epoch={_short(header.get('epoch'), 8)} recv={_seqs(header.get('recv'))}")
        if header.get("lost"):
            parts.append(f"lost={_seqs(header.get('lost'))}")
    elif t in ("ack", "ping", "pong"):
        parts.append(f"a={_seqs(header.get('a'))}")
    if payload_len:
        parts.append(f"{payload_len}B")
    text = " ".join(parts)
    return text if len(text) <= MAX_SUMMARY else text[: MAX_SUMMARY - 1] + "…"


def decode_message(data: bytes) -> tuple[str, dict[str, Any] | None]:
    """(summary, header) of one binary WebSocket message; header None when it is not ours."""
    if len(data) < 4:
        return f"malformed frame ({len(data)}B)", None
    (hlen,) = struct.unpack(">I", data[:4])
    try:
        header = json.loads(data[4:4 + hlen])
    except ValueError:
        return f"malformed frame header ({len(data)}B)", None
    if not isinstance(header, dict):
        return f"malformed frame header ({len(data)}B)", None
    return describe_frame(header, max(0, len(data) - 4 - hlen)), header


class _Direction:
    """Incremental RFC 6455 parser for one direction of one link."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.in_http = True
        self.opaque = False
        self.fragments: list[bytes] = []
        self.fragment_op = 0

    def feed(self, data: bytes) -> list[tuple[str, str, dict | None]]:
        """Complete items in ``data``: ``(kind, summary, header)`` with kind one of
        ``handshake``, ``frame`` (ours), ``text``, ``close``, ``ping``, ``pong``."""
        if self.opaque:
            return []
        self.buf += data
        out: list[tuple[str, str, dict | None]] = []
        if self.in_http:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HTTP:
                    self.opaque = True
                return out
            first = bytes(self.buf[: self.buf.find(b"\r\n")]).decode("latin-1")
            out.append(("handshake", first, None))
            del self.buf[: end + 4]
            self.in_http = False
        while True:
            item = self._frame()
            if item is None:
                return out
            out.extend(item)

    def _frame(self) -> list | None:
        frame = take_frame(self.buf)
        if frame is None:
            return None
        fin, opcode, payload = frame
        if opcode >= 0x8:  # control frames are never fragmented
            if opcode == 0x8:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                reason = payload[2:].decode("utf-8", "replace")
                return [("close", f"close {code if code is not None else '(no code)'}"
                                  + (f" {_short(reason, 40)}" if reason else ""), None)]
            return [(OPCODES.get(opcode, f"op{opcode}"), OPCODES.get(opcode, f"op{opcode}"), None)]
        if opcode != 0x0:
            self.fragment_op, self.fragments = opcode, []
        self.fragments.append(payload)
        if not fin:
            return []
        message, op = b"".join(self.fragments), self.fragment_op
        self.fragments = []
        if op == 0x2:
            summary, header = decode_message(message)
            return [("frame", summary, header)]
        return [("text", f"text message ({len(message)}B)", None)]


class WireTap:
    """Collects decoded frames per link; ``events()`` hands out the new ones (recording order).

    ``owners`` maps a link id to the lane of the client that dialled it; other links belong
    to other peers (``peer``). The server's lane is ``server``.
    """

    def __init__(self) -> None:
        self.owners: dict[int, str] = {}
        self._dirs: dict[tuple[int, str, str], _Direction] = {}
        self._sent: dict[tuple[int, str], list[dict]] = {}
        self._received: dict[tuple[int, str], int] = {}
        self._new: list[tuple[float, str, str, dict]] = []

    def lane(self, link: int | None, side: str) -> str:
        if side == "server":
            return "server"
        return self.owners.get(link, "peer") if link is not None else "peer"

    def __call__(self, t: float, link: int, direction: str, what: str, data: bytes) -> None:
        """Trace tap: ``what`` is ``send`` (an endpoint wrote) or ``recv`` (an endpoint read)."""
        key = (link, direction, what)
        parser = self._dirs.get(key)
        if parser is None:
            parser = self._dirs[key] = _Direction()
        sender = "client" if direction == "c2s" else "server"
        receiver = "server" if direction == "c2s" else "client"
        for kind, summary, header in parser.feed(bytes(data)):
            if what == "send":
                detail = {"link": link, "dir": direction, "to": self.lane(link, receiver), "what": kind,
                          "summary": summary, "arrived": None}
                if header is not None:
                    detail["header"] = header
                self._sent.setdefault((link, direction), []).append(detail)
                self._new.append((t, self.lane(link, sender), "frame", detail))
            else:
                n = self._received.get((link, direction), 0)
                sent = self._sent.get((link, direction), [])
                if n < len(sent):
                    sent[n]["arrived"] = round(t, 9)
                self._received[(link, direction)] = n + 1

    def events(self) -> list[tuple[float, str, str, dict]]:
        """Frames decoded since the last call, as ``(t, lane, kind, detail)``. Their
        ``arrived`` is filled in place when the peer reads them, possibly later."""
        new, self._new = self._new, []
        return new
