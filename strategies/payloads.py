"""Hypothesis strategies for stream payloads: text, JSON, bytes, multipart bodies and sizes.

Bugs in streaming code cluster at edges: multi-byte characters split across fragments,
combining marks and ZWJ sequences cut in half, NUL and BOM passed through C-ish code,
sizes one byte either side of a frame or message limit. These strategies draw those
edges far more often than uniform generation would, while staying composable ordinary
``SearchStrategy`` objects that shrink towards small, plain values.

Big payloads are drawn as *sizes and seeds*, never as drawn bytes, so generating a
multi-MiB case costs the same as a tiny one (Hypothesis' own buffer is a few KiB).
``chunk_specs()`` produces the scripted test app's chunk commands
(``statemodel.stream.testapp``; PROTOCOL.md appendix A).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from hypothesis import strategies as st

__all__ = [
    "BOUNDARY_SIZES",
    "EDGE_TEXT",
    "JSON_SAMPLES",
    "SeededBytes",
    "binary",
    "burst_specs",
    "chunk_specs",
    "json_documents",
    "multipart_chunks",
    "sizes",
    "unicode_text",
]

KIB = 1024
MIB = 1024 * KIB

#: Sizes where stream code tends to break: WebSocket's 7/16-bit length encodings (125/126,
#: 65535/65536), our 64 KiB fragment size, trio-websocket's default max_message_size (1 MiB,
#: beyond which it closes 1009) and the 2 MiB responses of the design targets.
BOUNDARY_SIZES: tuple[int, ...] = (
    0, 1, 2, 125, 126, 127, 65535,
    64 * KIB - 1, 64 * KIB, 64 * KIB + 1,
    MIB - 1, MIB, MIB + 1,
    2 * MIB - 1, 2 * MIB, 2 * MIB + 1,
    3 * MIB, 4 * MIB,
)

#: Short strings that break text handling; every one encodes as UTF-8 (no lone surrogates).
EDGE_TEXT: tuple[str, ...] = (
    "\x00",  # NUL
    "\ufeff",  # BOM / zero-width no-break space
    "\r\n", "\r", "\n", "\t", "\x7f", "\x85", "\u2028", "\u2029",  # line ends, DEL, C1
    "\x80", "\u07ff", "\u0800", "\uffff", "\U00010000", "\U0010ffff",  # UTF-8 length edges
    "\ud7ff", "\ue000", "\ufffe", "\ufffd",  # around the surrogate block, nonchars, U+FFFD
    "😀", "𝄞", "🎉",  # astral
    "👩\u200d💻", "👨\u200d👩\u200d👧\u200d👦", "🏳\ufe0f\u200d🌈",  # ZWJ sequences
    "🇺🇦", "👍🏽", "1\ufe0f\u20e3",  # flags, skin tone, keycap
    "e\u0301", "\u0301", "a\u0308\u0323\u0336",  # combining marks (incl. a leading one)
    "שלום", "مرحبا", "\u202e", "\u200f", "\u200e",  # RTL text and bidi controls
    "\u200b", "\u200d", "中文字", '"', "\\", "</script>",  # zero width, CJK, JSON/HTML specials
)

_UTF8_CHAR = st.characters(codec="utf-8")


def unicode_text(min_chars: int = 0, max_chars: int = 200) -> st.SearchStrategy[str]:
    """Strings of ``min_chars``..``max_chars`` code points, weighted towards edge cases.

    About half the pieces come from :data:`EDGE_TEXT` (astral, ZWJ, combining, RTL, NUL,
    BOM, CRLF...), the rest are any UTF-8-encodable character. Pieces may be cut at the
    length limit, which leaves half sequences (a lone ZWJ, a dangling combining mark) -
    also edges. Lone surrogates never appear: they cannot be encoded as UTF-8.
    """
    if not 0 <= min_chars <= max_chars:
        raise ValueError(f"need 0 <= min_chars <= max_chars, got {min_chars}, {max_chars}")
    piece = st.one_of(_UTF8_CHAR, st.sampled_from(EDGE_TEXT))
    return st.lists(piece, min_size=min_chars, max_size=max_chars).map(lambda parts: "".join(parts)[:max_chars])


def sizes(max_size: int = 4 * MIB, min_size: int = 0) -> st.SearchStrategy[int]:
    """Byte counts: mostly small, regularly on :data:`BOUNDARY_SIZES`, sometimes anywhere.

    Roughly 60% small sizes (< 1 KiB, where shrinking goes), 20% the named boundaries within
    range (plus ``min_size`` and ``max_size`` themselves) and 20% a log-uniform spread up to
    ``max_size``, so every order of magnitude is visited.
    """
    if not 0 <= min_size <= max_size:
        raise ValueError(f"need 0 <= min_size <= max_size, got {min_size}, {max_size}")
    small = st.integers(min_size, min(max_size, max(min_size, KIB - 1)))
    edges = sorted({s for s in BOUNDARY_SIZES if min_size <= s <= max_size} | {min_size, max_size})
    top_bit = max(0, math.floor(math.log2(max_size))) if max_size else 0

    def spread(bit: int) -> st.SearchStrategy[int]:
        low, high = max(min_size, 2**bit), min(max_size, 2 ** (bit + 1) - 1)
        return st.integers(low, high) if low <= high else st.just(min_size)

    return st.one_of(small, small, small, st.sampled_from(edges), st.integers(0, top_bit).flatmap(spread))


def _seeded_bytes(seed: int, size: int) -> bytes:
    return hashlib.shake_256(b"statemodel-payload:%d" % seed).digest(size)


_PATTERNS = ("zeros", "ones", "seeded", "ascii")


def _patterned(pattern: str, seed: int, size: int) -> bytes:
    if pattern == "zeros":
        return bytes(size)
    if pattern == "ones":
        return b"\xff" * size
    if pattern == "ascii":
        return _seeded_bytes(seed, size).translate(_PRINTABLE)
    return _seeded_bytes(seed, size)


_PRINTABLE = bytes(b % 95 + 32 for b in range(256))


class SeededBytes(bytes):
    """Bytes built from ``(pattern, seed, size)`` whose ``repr`` is that recipe.

    A failing example holding 2 MiB of bytes would otherwise print megabytes; this prints
    ``SeededBytes('seeded', 7, 2097152)``, which also rebuilds the same value when run.
    """

    pattern: str
    seed: int

    def __new__(cls, pattern: str, seed: int, size: int) -> SeededBytes:
        if pattern not in _PATTERNS:
            raise ValueError(f"unknown pattern {pattern!r}; expected one of {_PATTERNS}")
        value = super().__new__(cls, _patterned(pattern, seed, size))
        value.pattern, value.seed = pattern, seed
        return value

    def __repr__(self) -> str:
        return f"SeededBytes({self.pattern!r}, {self.seed!r}, {len(self)!r})"

    def __reduce__(self) -> tuple:
        return (SeededBytes, (self.pattern, self.seed, len(self)))


def binary(min_size: int = 0, max_size: int = 64 * KIB) -> st.SearchStrategy[bytes]:
    """Bytes of ``min_size``..``max_size``: drawn directly when short, else seeded and patterned.

    Up to 512 bytes Hypothesis draws the bytes itself (and shrinks them); larger values
    get their length from :func:`sizes` and content from a seed (zeros, 0xFF, printable,
    pseudo-random) as :class:`SeededBytes`, so megabytes cost no more to generate (or to
    print in a failing example) than a few bytes.
    """
    if not 0 <= min_size <= max_size:
        raise ValueError(f"need 0 <= min_size <= max_size, got {min_size}, {max_size}")
    parts = []
    if min_size <= 512:
        parts.append(st.binary(min_size=min_size, max_size=min(max_size, 512)))
    if max_size > 512:
        parts.append(
            st.builds(
                SeededBytes,
                st.sampled_from(_PATTERNS),
                st.integers(0, 2**16),
                sizes(max_size=max_size, min_size=max(min_size, 513)),
            )
        )
    return st.one_of(parts)


def json_documents(max_leaves: int = 30) -> st.SearchStrategy[Any]:
    """JSON values that survive ``json.loads(json.dumps(v)) == v``: nested lists/objects,
    unicode keys (edge-weighted), big integers (beyond 2**53 and 2**64), finite floats
    (no NaN or infinity, which JSON cannot carry), bools and null."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from([2**53, 2**53 + 1, -(2**63), 2**64, 10**30]),
        st.floats(allow_nan=False, allow_infinity=False),
        unicode_text(max_chars=20),
    )
    keys = unicode_text(max_chars=12)
    return st.recursive(
        leaves,
        lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(keys, children, max_size=5)),
        max_leaves=max_leaves,
    )


_HEADER_NAME = st.sampled_from(["Content-Type", "Content-Disposition", "Content-ID", "X-Part-Seq", "Content-Language"])
_HEADER_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
_CONTENT_TYPES = st.sampled_from(
    ["text/plain; charset=utf-8", "application/json", "application/octet-stream", "image/png"]
)


@st.composite
def multipart_chunks(draw: st.DrawFn, max_parts: int = 5, max_body: int = 4 * KIB) -> list[bytes]:
    """A ``multipart/mixed`` body as the chunks a streaming app would emit, one per part.

    Chunk *i* is ``--B\\r\\n`` + headers + ``\\r\\n\\r\\n`` + body + ``\\r\\n``; the last chunk
    is the close delimiter ``--B--\\r\\n``. Bodies are text (edge-weighted, UTF-8) or bytes;
    the boundary ``B`` is extended until no body contains it, as RFC 2046 requires.
    """
    parts: list[tuple[dict[str, str], bytes]] = []
    for index in range(draw(st.integers(0, max_parts))):
        headers = {"Content-Type": draw(_CONTENT_TYPES)}
        headers.update(draw(st.dictionaries(_HEADER_NAME, _HEADER_VALUE, max_size=2)))
        headers["X-Part-Seq"] = str(index)
        body = draw(st.one_of(unicode_text(max_chars=200).map(str.encode), binary(max_size=max_body)))
        parts.append((headers, body))
    boundary = "statemodel-" + draw(st.text("0123456789abcdef", min_size=4, max_size=8))
    while any(boundary.encode() in body for _, body in parts):
        boundary += "x"
    chunks = []
    for headers, body in parts:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        chunks.append(f"--{boundary}\r\n{head}\r\n".encode() + body + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return chunks


#: JSON documents for the scripted app's ``json`` chunks: scalars, nesting, integers beyond
#: 2**53 and 2**64, floats, escapes, non-ASCII keys, and one of about 2 KB. A chunk's JSON
#: reaches the stream only as its canonical text, so one choice among these covers what a
#: drawn document would (``json_documents`` costs tens of choices to draw and to shrink).
JSON_SAMPLES: tuple[Any, ...] = (
    {},
    [],
    None,
    0,
    "",
    True,
    -(2**63),
    2**64 + 1,
    1.5e-300,
    "\"quoted\" \\ </script> \x00 \u2028",
    {"ключ": "值", "😀": [None, False, 0.5], "": {}},
    [[[[[[1]]]]], {"a": {"b": {"c": {"d": "e"}}}}],
    {"items": [{"id": i, "name": "é" * (i % 7), "tags": ["x"] * (i % 3)} for i in range(40)]},
)


@st.composite
def chunk_specs(draw: st.DrawFn, max_size: int = 4 * MIB, max_chars: int | None = None) -> dict[str, Any]:
    """Chunk commands for the scripted app: ``{"kind": "text", "seed": S, "chars": N}``,
    ``{"kind": "bytes", "seed": S, "size": N}`` or ``{"kind": "json", "value": V}``.

    Seeds are small ints (readable in shrunk programs); sizes come from :func:`sizes`, so
    0, 1, 64 KiB +- 1, 1 MiB +- 1 and 2 MiB+ turn up regularly. ``max_chars`` defaults to
    ``max_size // 2`` (the app's alphabet averages about two UTF-8 bytes per character).
    JSON values are one of :data:`JSON_SAMPLES`. A spec is two to four choices (kind, seed,
    size), all a shrinker has to minimise per chunk; it shrinks towards short text.
    """
    kind = draw(st.sampled_from(("text", "bytes", "json")))
    if kind == "json":
        return {"kind": "json", "value": draw(st.sampled_from(JSON_SAMPLES))}
    seed = draw(st.integers(0, 255))
    if kind == "text":
        chars = max_size // 2 if max_chars is None else max_chars
        return {"kind": "text", "seed": seed, "chars": draw(sizes(max_size=chars))}
    return {"kind": "bytes", "seed": seed, "size": draw(sizes(max_size=max_size))}


def burst_specs(limit: int, over: int = 1, seed: int = 0) -> list[dict[str, Any]]:
    """Two bytes chunks of ``limit + over`` bytes each, sent as one burst: the scripted app's
    answer that overfills a buffer bounded at ``limit`` bytes plus one message by exactly
    ``over`` bytes (``over=0`` hits that bound exactly).

    A producer that honours the bound buffers the first message (which fills the buffer) and
    waits for an acknowledgement before the second; one that ignores it holds
    ``2 * (limit + over)`` bytes, ``over`` more than ``limit`` plus its largest message.
    Lists of :func:`chunk_specs` overfill a given bound only by chance (a 30 s hunt of a
    producer without backpressure saw it in none of 298 examples): a rule that knows its
    target's bound draws ``over`` (one choice) and calls this.
    """
    if limit < 0 or over < 0:
        raise ValueError(f"need limit >= 0 and over >= 0, got {limit}, {over}")
    return [{"kind": "bytes", "seed": seed + i, "size": limit + over} for i in range(2)]
