"""The scripted server application the state machine drives (spec: PROTOCOL.md appendix A).

Every open payload and client message is a UTF-8 JSON command; emitted content derives from
seeds through `blob` / `text`, pure functions the model calls too, so it can predict every
byte without a side channel. Any external server implements this to be tested.
"""

from __future__ import annotations

import codecs
import hashlib
import json
from typing import Any, AsyncIterator

from .errors import StreamError

# Mixes 1-, 2-, 3- and 4-byte UTF-8 characters so fragment boundaries hit every case.
ALPHABET = "abcdefghij KLMNOP0123456789\n\"\\éßøЖλ€中文字😀🎉𝄞"


_CHAR_OF_BYTE = "".join(ALPHABET[b % len(ALPHABET)] for b in range(256))


class _Prefixes:
    """The longest output made so far for each of the most recent seeds, within a byte budget.

    Both functions below are prefix-stable (the first N bytes/characters of a longer output
    are the shorter output), so one entry per seed serves every size up to its own. The app
    and the tester's model derive the same multi-MiB chunks close together in time, and a
    shrinking run asks for the same few seeds over and over."""

    def __init__(self, budget: int, unit: int) -> None:
        self.budget = budget  # bytes of memory kept, at `unit` bytes per item
        self.unit = unit
        self.kept: dict[int, Any] = {}  # seed -> longest output (insertion order = recency)
        self.used = 0

    def get(self, seed: int, n: int):
        have = self.kept.get(seed)
        if have is None or len(have) < n:
            return None
        self.kept[seed] = self.kept.pop(seed)  # most recent last
        return have if len(have) == n else have[:n]

    def put(self, seed: int, value) -> None:
        cost = len(value) * self.unit
        if cost > self.budget:
            return
        old = self.kept.pop(seed, None)
        if old is not None:
            self.used -= len(old) * self.unit
        while self.kept and self.used + cost > self.budget:
            self.used -= len(self.kept.pop(next(iter(self.kept)))) * self.unit
        self.kept[seed] = value
        self.used += cost


# Each holds a few multi-MiB chunks; texts are mostly astral-plane strings (4 bytes a char).
MEMO_BLOB_BYTES = 16 << 20
MEMO_TEXT_BYTES = 24 << 20
_BLOBS = _Prefixes(MEMO_BLOB_BYTES, unit=1)
_TEXTS = _Prefixes(MEMO_TEXT_BYTES, unit=4)


def set_memo(blob_bytes: int, text_bytes: int) -> None:
    """Bound (and empty) the memo of recent outputs; 0 keeps none. A server process alone
    never derives a chunk twice (a resume replays its buffer), so there it only costs memory."""
    for memo, budget in ((_BLOBS, blob_bytes), (_TEXTS, text_bytes)):
        memo.budget, memo.kept, memo.used = budget, {}, 0


def blob(seed: int, size: int) -> bytes:
    """`size` bytes of SHAKE-256(b"statemodel:<seed>") (one XOF call: fast, standard everywhere)."""
    out = _BLOBS.get(seed, size)
    if out is None:
        out = hashlib.shake_256(b"statemodel:%d" % seed).digest(size)
        _BLOBS.put(seed, out)
    return out


def text(seed: int, chars: int) -> str:
    """`chars` characters: ALPHABET[b % len(ALPHABET)] for each byte b of blob(seed, chars).

    One C-level charmap decode of the bytes (a 256-entry table): about 3x faster than four
    strided byte translations and a UTF-32 decode, and 100x a Python loop."""
    out = _TEXTS.get(seed, chars)
    if out is None:
        out = codecs.charmap_decode(blob(seed, chars), "strict", _CHAR_OF_BYTE)[0]
        _TEXTS.put(seed, out)
    return out


#: Largest chunk a command may ask for (PROTOCOL.md appendix A): the default max_message_size,
#: and a quarter of it in characters (a character is up to 4 UTF-8 bytes). Checked before
#: anything is computed, so a request for 300 MB costs nothing.
MAX_BYTES = 16 * 1024 * 1024
MAX_CHARS = MAX_BYTES // 4


def _count(spec: dict[str, Any], key: str, limit: int) -> int:
    v = spec.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= limit:
        raise StreamError(f"bad_command: {key} must be an integer in [0, {limit}], got {str(v)[:40]!r}")
    return v


def chunk_of(spec: dict[str, Any]) -> str | bytes:
    kind = spec.get("kind")
    if kind == "text":
        return text(int(spec["seed"]), _count(spec, "chars", MAX_CHARS))
    if kind == "bytes":
        return blob(int(spec["seed"]), _count(spec, "size", MAX_BYTES))
    if kind == "json":
        return json.dumps(spec["value"], sort_keys=True, separators=(",", ":"))
    raise StreamError(f"bad_command: unknown chunk kind {kind!r}")


def parse(raw: str | bytes) -> list[dict[str, Any]]:
    try:
        cmd = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StreamError(f"bad_command: not JSON ({exc})") from None
    if not isinstance(cmd, dict) or not isinstance(cmd.get("op"), str):
        raise StreamError("bad_command: a command is a JSON object with a string 'op'")
    if cmd["op"] == "batch":
        cmds = cmd.get("commands")
        if not isinstance(cmds, list) or not all(isinstance(c, dict) for c in cmds):
            raise StreamError("bad_command: batch.commands must be a list of commands")
        return cmds
    return [cmd]


async def script_app(request) -> AsyncIterator[str | bytes]:
    """Run the open payload's commands, then each client message's, until end/fail.

    One flat generator that yields chunks straight from `chunk_of` (no local keeps a yielded
    chunk alive while the app is parked on backpressure)."""
    batches = [parse(request.payload)]
    while True:
        for cmd in batches.pop():
            op = cmd.get("op")
            if op == "emit":
                for spec in cmd.get("chunks", []):
                    yield chunk_of(spec)
            elif op == "end":
                return
            elif op == "fail":
                raise StreamError(str(cmd.get("reason", "failed")))
            elif op == "set_context":
                await request.set_context(str(cmd["key"]), cmd.get("value"))
            elif op == "echo":
                data = cmd.get("data")
                yield data if isinstance(data, str) else json.dumps(data, sort_keys=True, separators=(",", ":"))
            else:
                raise StreamError(f"bad_command: unknown op {op!r}")
        batches.append(parse(await request.receive()))
