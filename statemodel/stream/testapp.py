"""The scripted server application the state machine drives (spec: PROTOCOL.md appendix A).

Every open payload and client message is a UTF-8 JSON command; emitted content derives from
seeds through `blob` / `text`, pure functions the model calls too, so it can predict every
byte without a side channel. Any external server implements this to be tested.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any, AsyncIterator

from .errors import StreamError

# Mixes 1-, 2-, 3- and 4-byte UTF-8 characters so fragment boundaries hit every case.
ALPHABET = "abcdefghij KLMNOP0123456789\n\"\\éßøЖλ€中文字😀🎉𝄞"


_CHAR_OF_BYTE = [ALPHABET[b % len(ALPHABET)] for b in range(256)]
# The same mapping as four byte tables, one per byte of each character's UTF-32-LE code: four
# C-speed `bytes.translate` calls and one decode instead of a Python call per character
# (3-4x faster; multi-MiB text chunks are drawn all the time).
_UTF32_LANES = [bytes((ord(c) >> (8 * k)) & 0xFF for c in _CHAR_OF_BYTE) for k in range(4)]


# Cached: the app and the tester's model both derive the same multi-MiB chunks, close together
# in time, so a few entries suffice (each may be 4 MiB; 32 of them cost a worker 128 MiB).
@functools.lru_cache(maxsize=8)
def blob(seed: int, size: int) -> bytes:
    """`size` bytes of SHAKE-256(b"statemodel:<seed>") (one XOF call: fast, standard everywhere)."""
    return hashlib.shake_256(b"statemodel:%d" % seed).digest(size)


@functools.lru_cache(maxsize=8)
def text(seed: int, chars: int) -> str:
    """`chars` characters: ALPHABET[b % len(ALPHABET)] for each byte b of blob(seed, chars)."""
    raw = blob(seed, chars)
    wide = bytearray(4 * chars)
    for k, lane in enumerate(_UTF32_LANES):
        wide[k::4] = raw.translate(lane)
    return wide.decode("utf-32-le")


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
