"""The grammar of hostile input: control frames and app commands as Hypothesis strategies.

A hand-written attack tries what its author thought of; this grammar draws the rest. Every
frame type (and unknown ones) at every phase of a connection (before hello, after welcome,
with a stream open), each field valid or replaced by a hostile value: lone surrogates,
non-ASCII digits (``"²"``), huge, negative, float and bool numbers, numbers beyond what a
parser takes (``1e999``, 5,000 digits, ``NaN``), 20,000-deep nesting, unknown fields,
wrong types; and scripted-app commands (PROTOCOL.md appendix A) whose text is just as
hostile (a ``fail`` reason holding ``"\\ud800"``).

Values are drawn as small trees (`Obj`, `Raw`, `Deep`, `AboveLimit`) and rendered to JSON
text by `render`, so a shrunk program prints ``Deep(20000)``, not 20,000 brackets, and
replays the same bytes. Sizes an app is asked for come only from a fixed, safe list (a
drawn size of 2**34 would make the *tester's* process allocate 16 GiB in the sim).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from statemodel.stream.frames import TYPES

PHASES = ("pre_hello", "established", "stream")  # where in a connection the frame is sent


@dataclass(frozen=True)
class Raw:
    """JSON text sent as is: a number no parser should take whole, NaN, Infinity."""

    text: str

    def __repr__(self) -> str:  # Raw('9' * 5000), not 5,000 nines in a printed program
        if len(self.text) > 20 and len(set(self.text)) == 1:
            return f"Raw({self.text[0]!r} * {len(self.text)})"
        return f"Raw({self.text!r})"


@dataclass(frozen=True)
class Deep:
    """``depth`` nested arrays (``kind="["``) or objects (``kind="{"``)."""

    depth: int
    kind: str = "["


@dataclass(frozen=True)
class Obj:
    """A JSON object as ordered pairs: key order is kept and keys may repeat."""

    pairs: tuple[tuple[str, Any], ...]

    def get(self, key: str, default: Any = None) -> Any:
        return next((v for k, v in self.pairs if k == key), default)


@dataclass(frozen=True)
class AboveLimit:
    """A size one above the server's limit ``name`` (resolved when the message is rendered)."""

    name: str = "max_message_size"
    delta: int = 1


def render(value: Any, limits: Any = None, *, escape: bool = True) -> str:
    """JSON text of a grammar value. Strings are escaped (a lone surrogate is then valid
    JSON); with ``escape=False`` they are written as is (see `HostileFrame.raw_utf8`)."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Deep):
        if value.kind == "{":
            return '{"a":' * value.depth + "0" + "}" * value.depth
        return "[" * value.depth + "]" * value.depth
    if isinstance(value, AboveLimit):
        if limits is None:
            raise ValueError("AboveLimit needs the server's limits to render")
        return str(getattr(limits, value.name) + value.delta)
    if isinstance(value, Obj):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=escape)}:{render(v, limits, escape=escape)}"
                              for k, v in value.pairs) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(render(v, limits, escape=escape) for v in value) + "]"
    return json.dumps(value, ensure_ascii=escape)


@dataclass(frozen=True)
class HostileFrame:
    """One protocol frame as a hostile client sends it: ``header`` (rendered JSON) + payload.

    ``payload`` is a grammar value too (an app command for ``open``/``data``), rendered and
    UTF-8 encoded; ``raw_utf8`` encodes the header's lone surrogates as (invalid) UTF-8
    bytes instead of JSON escapes."""

    header: Any
    payload: Any = b""
    raw_utf8: bool = False

    def encode(self, limits: Any = None) -> bytes:
        h = render(self.header, limits, escape=not self.raw_utf8).encode("utf-8", "surrogatepass")
        if isinstance(self.payload, (bytes, bytearray)):
            body = bytes(self.payload)
        else:
            body = render(self.payload, limits).encode("utf-8")
        return struct.pack(">I", len(h)) + h + body

    @property
    def type(self) -> str:
        t = self.header.get("t") if isinstance(self.header, Obj) else None
        return t if isinstance(t, str) else f"<{type(self.header).__name__}>"


# ---- values ------------------------------------------------------------------------------
#: Strings no field expects: lone surrogates (valid JSON, not encodable as UTF-8), NUL, RTL
#: override, non-ASCII digits that ``str.isdigit`` accepts and ``int`` may not.
ODD_STRINGS = ("\ud800", "\udfff", "x\ud800y", "\x00", "", "²", "١٢", "𝟙", "Ⅻ", "\u202e", "é😀")
#: Stream-id keys of ack/recv maps: non-ASCII digits first (the ``"²"`` crash), then
#: signs, decimals, padding, overlong and huge ids.
ODD_KEYS = ("²", "١", "𝟙", "Ⅻ", "-1", "+1", "1.0", "01", " 1", "", "0x1", "1e3", "9" * 12, "9" * 13, "9" * 40, "\ud800")
ODD_NUMBERS: tuple[Any, ...] = (
    -1, 0, 1, 2**31, 2**53 + 1, 2**63, 2**64, 10**30, -(2**63), 1.5, -0.0, 1e308,
    Raw("1e999"), Raw("-1e999"), Raw("NaN"), Raw("Infinity"), Raw("9" * 5000), Raw("1E2"), Raw("-0"),
)
ODD_SCALARS: tuple[Any, ...] = ODD_NUMBERS + (True, False, None) + ODD_STRINGS
#: Depths: shrinks towards a harmless 2; 20,000 is the depth that crashed handlers.
DEPTHS = (2, 1000, 20_000)
#: The only sizes an app is ever asked for (see the module docstring).
SAFE_SIZES: tuple[Any, ...] = (0, 1, -1, 1.5, "10", None, True, AboveLimit())

ANY_CHAR = st.characters(categories=("L", "N", "P", "S", "Z", "C"))  # surrogates (Cs) included

deep = st.builds(Deep, st.sampled_from(DEPTHS), st.sampled_from(("[", "{")))
texts = st.one_of(st.sampled_from(ODD_STRINGS), st.text(ANY_CHAR, max_size=6))
numbers = st.one_of(st.sampled_from(ODD_NUMBERS), st.integers())
scalars = st.one_of(st.sampled_from(ODD_SCALARS), st.integers(), st.text(ANY_CHAR, max_size=6))
keys = st.one_of(st.sampled_from(ODD_KEYS), st.integers(0, 300).map(str), texts)


def _obj(values: st.SearchStrategy) -> st.SearchStrategy[Obj]:
    return st.lists(st.tuples(keys, values), max_size=3).map(lambda pairs: Obj(tuple(pairs)))


values = st.one_of(
    st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | _obj(inner), max_leaves=5),
    deep,
)

#: ack/ping/pong ``a`` and resume ``recv``: stream id -> seq. Mostly the right shape, with
#: odd keys and values; sometimes not a map at all.
seq_maps = st.one_of(
    st.lists(st.tuples(st.one_of(st.sampled_from(("1", "2", "99")), keys), st.one_of(st.integers(0, 4), numbers)),
             max_size=3).map(lambda pairs: Obj(tuple(pairs))),
    values,
)


#: A resume's ``recv`` for `probes.resume_probe` (stream 1 sent a few items; 2 and 99 never
#: existed): well-formed maps whose positions are valid, beyond what was sent, or name
#: streams never sent, in any order -- a valid position before an invalid one is what caught
#: a server applying half a refused resume -- and sometimes anything at all.
recv_maps = st.one_of(
    st.lists(st.tuples(st.sampled_from(("1", "2", "99", "0")), st.integers(0, 5)), min_size=1, max_size=3)
    .map(lambda pairs: Obj(tuple(pairs))),
    seq_maps,
)


# ---- app commands (PROTOCOL.md appendix A) -----------------------------------------------
def _cmd(*pairs: tuple[str, Any]) -> Obj:
    return Obj(tuple(pairs))


chunk_specs = st.builds(
    lambda kind, seed, size_key, size: _cmd(("kind", kind), ("seed", seed), (size_key, size)),
    st.one_of(st.sampled_from(("bytes", "text", "json")), texts),
    numbers,
    st.sampled_from(("size", "chars", "value")),
    st.sampled_from(SAFE_SIZES),
)

commands = st.deferred(lambda: st.one_of(
    st.builds(lambda r: _cmd(("op", "fail"), ("reason", r)), st.one_of(texts, values)),
    st.builds(lambda d: _cmd(("op", "echo"), ("data", d)), st.one_of(texts, values)),
    st.builds(lambda k, v: _cmd(("op", "set_context"), ("key", k), ("value", v)), st.one_of(texts, values), values),
    st.builds(lambda c: _cmd(("op", "emit"), ("chunks", c)), st.lists(chunk_specs, max_size=2)),
    st.builds(lambda op: _cmd(("op", op)), st.one_of(texts, values)),
    st.builds(lambda cs: _cmd(("op", "batch"), ("commands", cs)), st.lists(commands, max_size=2)),
    st.just(_cmd(("op", "end"))),
    deep,
    values,
))


# ---- control frames ----------------------------------------------------------------------
FRAME_TYPES = tuple(sorted(TYPES)) + ("bogus",)
#: What a well-behaved client would put in each field at each phase (stream 1 is open, its
#: open being item 1, in phase "stream"); the grammar starts here and breaks some of it.
_IDLE = _cmd(("op", "emit"), ("chunks", []))


def base_fields(t: str, phase: str) -> dict[str, Any]:
    sid = 2 if phase == "stream" else 1
    return {
        "hello": {"v": 1},
        "ack": {"a": Obj((("1", 0),))},
        "ping": {"a": Obj(())},
        "pong": {"a": Obj(())},
        "open": {"s": sid, "q": 1, "k": "t"},
        "data": {"s": 1, "q": 2, "fin": True, "k": "t"},
        "cancel": {"s": 1, "q": 2},
        "ctx": {"s": 0, "q": 1, "key": "k", "value": 1},
        "end": {"s": 1, "q": 2},
        "error": {"s": 1, "q": 2, "reason": "x"},
        "welcome": {"v": 1, "session": "s", "token": "t", "epoch": "e", "outcome": "new", "recv": Obj(()), "lost": Obj(())},
    }.get(t, {})


def _field_values(name: str) -> st.SearchStrategy:
    if name in ("a", "recv"):
        return seq_maps
    if name == "resume":
        return resumes
    if name in ("s", "q", "v"):
        return numbers
    return values


resumes = st.one_of(
    st.builds(lambda s, t, e, r: _cmd(("session", s), ("token", t), ("epoch", e), ("recv", r)),
              st.one_of(st.just("s"), values), st.one_of(st.just("t"), values), st.one_of(st.just("e"), values), seq_maps),
    values,
)

_UNKNOWN_FIELDS = ("x", "T", "t2", "\ud800", "")


@st.composite
def control_frames(draw, phase: str) -> HostileFrame:
    """A frame of any type for ``phase``: valid fields, then up to three of them replaced,
    dropped, or joined by unknown ones; ``open``/``data`` carry a (hostile) app command."""
    t = draw(st.sampled_from(FRAME_TYPES))
    fields = base_fields(t, phase)
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(("set", "add", "drop", "type")))
        if op == "set" and fields:
            name = draw(st.sampled_from(sorted(fields)))
            fields[name] = draw(_field_values(name))
        elif op == "drop" and fields:
            del fields[draw(st.sampled_from(sorted(fields)))]
        elif op == "add":
            fields[draw(st.sampled_from(_UNKNOWN_FIELDS))] = draw(values)
        elif op == "type":
            t = draw(st.one_of(st.sampled_from(FRAME_TYPES), scalars))
    header = Obj((("t", t),) + tuple(fields.items()))
    payload = draw(st.one_of(st.just(_IDLE), commands)) if t in ("open", "data") else b""
    return HostileFrame(header, payload, raw_utf8=draw(st.booleans()) if _has_surrogate(header) else False)


def _has_surrogate(value: Any) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in render(value, _AnyLimits(), escape=False))


class _AnyLimits:
    def __getattr__(self, name: str) -> int:
        return 0


#: (phase, frame, ws_ping): what `probes.frame_probe` sends.
hostile_frames = st.sampled_from(PHASES).flatmap(
    lambda phase: st.tuples(st.just(phase), control_frames(phase), st.booleans()))
