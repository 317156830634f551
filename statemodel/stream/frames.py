"""Wire format: one frame = one binary WebSocket message =
``u32 big-endian header length | UTF-8 JSON header object | raw payload bytes``.

Pure (no trio). `decode` validates everything a peer controls and raises
`ProtocolError` with the documented close code, so bad input never reaches the core.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

from .errors import CloseCode, ProtocolError, printable

VERSION = 1
# Sequenced item types: per stream, per direction, seq from 1.
C2S_ITEMS = frozenset({"open", "data", "cancel", "ctx"})
S2C_ITEMS = frozenset({"data", "end", "error", "ctx"})
ITEMS = C2S_ITEMS | S2C_ITEMS
CONTROL = frozenset({"hello", "welcome", "ack", "ping", "pong"})
TYPES = ITEMS | CONTROL

_LEN = struct.Struct(">I")


@dataclass(frozen=True)
class Frame:
    """`t` is the frame type; `h` holds the other header fields; `payload` the raw bytes.

    A decoded payload is a read-only memoryview into the received message (no copy: the
    receiver joins fragments once, into the message it hands to the app); use
    ``bytes(f.payload)`` / ``str(f.payload, "utf-8")`` where a real object is needed."""

    t: str
    h: dict[str, Any] = field(default_factory=dict)
    payload: bytes | memoryview = b""

    @property
    def sid(self) -> int:
        return self.h["s"]

    @property
    def seq(self) -> int:
        return self.h["q"]


def encode(frame: Frame) -> bytes:
    """Total for any JSON-able header: text a peer made us echo (an error reason, a context
    key or value) may hold lone surrogates, which UTF-8 cannot carry; those headers go out
    with JSON's \\uXXXX escapes instead, which decode back to the very same string."""
    obj = {"t": frame.t, **frame.h}
    try:
        header = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except UnicodeEncodeError:
        header = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
    return b"".join((_LEN.pack(len(header)), header, frame.payload))  # payload may be a memoryview


def _bad(msg: str) -> ProtocolError:
    return ProtocolError(CloseCode.MALFORMED_FRAME, msg)


#: Integers on the wire (stream ids, sequence numbers) stay below 2^53: exact in every JSON
#: implementation, and a peer cannot make us do arithmetic on thousand-digit numbers.
MAX_INT = 2**53 - 1
#: JSON nesting a header may use (PROTOCOL.md §2). Deeper input is refused before anything
#: walks it recursively (the parser's own limit is the interpreter's recursion limit).
MAX_DEPTH = 32


def _finite(text: str) -> float:
    f = float(text)
    if math.isinf(f):  # 1e400: JSON has no infinity, and we could not send it back
        raise ValueError(f"number {text[:20]} is out of range")
    return f


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _short(v: Any) -> str:
    """A peer's value for an error message: repr, one line, cut (never the whole input)."""
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def _uint(h: dict, key: str, *, minimum: int = 0) -> int:
    v = h.get(key)
    if type(v) is not int or not minimum <= v <= MAX_INT:
        raise _bad(f"field {key!r} must be an integer in [{minimum}, 2^53), got {_short(v)}")
    return v


def _stream_id(k: Any, key: str) -> int:
    """A JSON object key naming a stream: canonical ASCII decimal ("7", never "07", "٧" or
    "²", which str.isdigit() accepts and int() either maps to 7 or refuses)."""
    if not (isinstance(k, str) and 0 < len(k) <= 16 and k.isascii() and k.isdigit() and (k == "0" or k[0] != "0")):
        raise _bad(f"field {key!r} has a bad stream id {_short(k)}")
    sid = int(k)
    if sid > MAX_INT:
        raise _bad(f"field {key!r} has a bad stream id {_short(k)}")
    return sid


_CONTAINERS = (dict, list)


def depth_ok(value: Any, limit: int) -> bool:
    """True if `value` nests no deeper than `limit` (breadth-first, no recursion on peer
    input; one list comprehension per container, so a header of 20,000 ``[]`` costs a few
    times its json.loads, not more)."""
    level = [value] if type(value) in _CONTAINERS else []
    depth = 1
    while level:
        if depth > limit:
            return False
        nxt: list = []
        for v in level:
            nxt += [c for c in (v.values() if type(v) is dict else v) if type(c) in _CONTAINERS]
        level, depth = nxt, depth + 1
    return True


def _seq_map(v: Any, key: str) -> dict[int, int]:
    """JSON object {"stream id": seq} -> {int: int} (JSON keys are strings)."""
    if not isinstance(v, dict):
        raise _bad(f"field {key!r} must be an object of stream id -> seq")
    out: dict[int, int] = {}
    for k, s in v.items():
        sid = _stream_id(k, key)
        if type(s) is not int or not 0 <= s <= MAX_INT:
            raise _bad(f"field {key!r} has a bad seq {_short(s)} for stream {sid}")
        out[sid] = s
    return out


def decode(data: bytes | bytearray, *, max_frame_size: int = 1 << 20, max_header_size: int = 1 << 16) -> Frame:
    if not isinstance(data, (bytes, bytearray)):
        raise _bad("frames are binary WebSocket messages, got a text message")
    if len(data) > max_frame_size:
        raise ProtocolError(CloseCode.FRAME_TOO_LARGE, f"frame of {len(data)} bytes exceeds {max_frame_size}")
    if len(data) < 4:
        raise _bad(f"truncated frame: {len(data)} bytes, need at least 4")
    (hlen,) = _LEN.unpack_from(data)
    if 4 + hlen > len(data):
        raise _bad(f"truncated frame: header length {hlen} but only {len(data) - 4} bytes follow")
    if hlen > max_header_size:  # a whole header, just too large: 4004 like the frame (PROTOCOL.md §2)
        raise ProtocolError(CloseCode.FRAME_TOO_LARGE, f"header of {hlen} bytes exceeds {max_header_size}")
    view = memoryview(data)
    try:
        h = json.loads(str(view[4 : 4 + hlen], "utf-8"), parse_float=_finite, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:  # ValueError: also integers of > 4300 digits
        raise _bad(f"header is not UTF-8 JSON: {printable(exc, 120)}") from None
    except RecursionError:
        raise _bad(f"header nests deeper than {MAX_DEPTH} levels") from None
    if not isinstance(h, dict):
        raise _bad("header must be a JSON object")
    # Fewer brackets than levels allowed (every usual header): nothing to walk.
    if data.count(b"[", 4, 4 + hlen) + data.count(b"{", 4, 4 + hlen) > MAX_DEPTH and not depth_ok(h, MAX_DEPTH):
        raise _bad(f"header nests deeper than {MAX_DEPTH} levels")
    t = h.pop("t", None)
    if not isinstance(t, str) or t not in TYPES:
        raise _bad(f"unknown frame type {_short(t)}")
    # bytes are immutable, so a view of them is a safe zero-copy payload; a bytearray is
    # copied, or the caller could change a decoded frame after the fact.
    payload: bytes | memoryview = b""
    if len(data) > 4 + hlen:
        payload = view[4 + hlen :] if isinstance(data, bytes) else bytes(view[4 + hlen :])
    _validate(t, h)
    if payload and t not in ("open", "data"):
        raise _bad(f"frame type {t!r} carries no payload, got {len(payload)} bytes")
    return Frame(t, h, payload)


def _validate(t: str, h: dict) -> None:
    if t in ITEMS:
        _uint(h, "s")
        _uint(h, "q", minimum=1)
        if t == "data":
            if type(h.get("fin")) is not bool:
                raise _bad("data.fin must be true or false")
            if h.get("k") not in ("t", "b"):
                raise _bad("data.k must be 't' (text) or 'b' (bytes)")
        elif t == "open":
            if h.get("k") not in ("t", "b"):
                raise _bad("open.k must be 't' (text) or 'b' (bytes)")
        elif t == "error":
            if not isinstance(h.get("reason"), str):
                raise _bad("error.reason must be a string")
        elif t == "ctx":
            if h["s"] != 0:
                raise _bad("ctx items travel on stream 0 only")
            if not isinstance(h.get("key"), str) or "value" not in h:
                raise _bad("ctx needs a string 'key' and a 'value'")
        if t != "ctx" and h["s"] == 0:
            raise _bad(f"{t} items need a stream id >= 1 (stream 0 is the session stream)")
    elif t == "hello":
        if type(h.get("v")) is not int:
            raise _bad(f"hello needs an integer version field 'v', got {_short(h.get('v'))}")
        r = h.get("resume")
        if r is not None:
            if not isinstance(r, dict):
                raise _bad("hello.resume must be an object")
            for key in ("session", "token", "epoch"):
                if not isinstance(r.get(key), str):
                    raise _bad(f"hello.resume.{key} must be a string")
            r["recv"] = _seq_map(r.get("recv", {}), "resume.recv")
    elif t == "welcome":
        if type(h.get("v")) is not int:
            raise _bad(f"welcome needs an integer version field 'v', got {_short(h.get('v'))}")
        for key in ("session", "token", "epoch"):
            if not isinstance(h.get(key), str):
                raise _bad(f"welcome.{key} must be a string")
        if h.get("outcome") not in ("new", "recovered", "reset"):
            raise _bad(f"welcome.outcome must be new|recovered|reset, got {h.get('outcome')!r}")
        h["recv"] = _seq_map(h.get("recv", {}), "recv")
        lost = h.get("lost", {})
        if not isinstance(lost, dict) or not all(isinstance(v, str) for v in lost.values()):
            raise _bad("welcome.lost must be an object of stream id -> reason")
        h["lost"] = {_stream_id(k, "lost"): reason for k, reason in lost.items()}
    elif t in ("ack", "ping", "pong"):
        h["a"] = _seq_map(h.get("a", {}), "a")


def seq_map_json(m: dict[int, int]) -> dict[str, int]:
    return {str(k): v for k, v in sorted(m.items())}
