"""Sans-IO core of the resumable stream: pure state machines for both ends (no trio).

Bytes and `now` go in; frames to send (per connection `outbox`) and application events come
out; `next_deadline()` / `on_timer(now)` drive heartbeats, acks, handshake and expiry.
Session state (sequence numbers, replay buffers, context, streams) lives in `_Endpoint` and
outlives connections; connection state (outbox, heartbeat clock, close code) lives in `Link`.
PROTOCOL.md is the normative description; this module is its reference.
"""

from __future__ import annotations

import bisect
import hmac
import random
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Callable

from .config import Config
from .errors import CloseCode, ProtocolError, clip
from .frames import C2S_ITEMS, MAX_DEPTH, S2C_ITEMS, VERSION, Frame, decode, depth_ok, encode

INF = float("inf")
#: Close codes for bad input from the peer (PROTOCOL.md §10): final, the session ends at once.
#: 1002/1007/1009 are the WebSocket layer's (garbage frames, invalid UTF-8, message too big).
FINAL_BAD_INPUT = frozenset({CloseCode.MALFORMED_FRAME, CloseCode.UNSUPPORTED_VERSION, CloseCode.PROTOCOL_VIOLATION,
                             CloseCode.FRAME_TOO_LARGE, CloseCode.MESSAGE_TOO_LARGE, CloseCode.WS_PROTOCOL_ERROR,
                             CloseCode.WS_INVALID_DATA, CloseCode.WS_MESSAGE_TOO_BIG})
#: Our close codes after which the session is ended at once: bad input, and our own
#: contained internal error (1011: its state may be half-updated; a resume gets `reset`).
ENDS_SESSION = FINAL_BAD_INPUT | {CloseCode.INTERNAL_ERROR}
#: Longest `error` item reason, in UTF-8 bytes (longer ones are cut; PROTOCOL.md §8).
MAX_ERROR_REASON = 1024


def make_token_source(rng: random.Random | None) -> Callable[[], str]:
    """Unguessable tokens in production (`secrets`); reproducible ones from a seeded rng."""
    if rng is None:
        return lambda: secrets.token_urlsafe(32)
    return lambda: rng.getrandbits(256).to_bytes(32, "big").hex()


def split_message(msg: str | bytes, size: int, *, mutants: frozenset[str] = frozenset()) -> tuple[str, list[bytes]]:
    """Fragments of at most `size` bytes; text is cut only on UTF-8 character boundaries.
    Fragments are memoryview slices (no copy until the frame is encoded)."""
    kind = "t" if isinstance(msg, str) else "b"
    data = msg.encode("utf-8") if isinstance(msg, str) else bytes(msg)
    if not data:
        return kind, [b""]
    view = memoryview(data)
    out, i = [], 0
    while i < len(data):
        j = min(len(data), i + size)
        if kind == "t" and "split_inside_char" not in mutants:
            while j < len(data) and (data[j] & 0xC0) == 0x80:  # continuation byte
                j -= 1
            if j == i:  # one character longer than `size` (< 4): send it whole, don't spin
                j += 1
                while j < len(data) and (data[j] & 0xC0) == 0x80:
                    j += 1
        out.append(view[i:j])
        i = j
    return kind, out


@dataclass
class _Out:
    seq: int
    order: int  # global send order, so replay keeps cross-stream order
    data: bytes  # encoded frame
    size: int  # payload bytes (what the bounds count)
    t: float  # when it was produced (age eviction)


def message_fits(msg: str | bytes, limit: int) -> bool:
    """`msg` is at most `limit` bytes (text as UTF-8), without encoding text that clearly
    fits (at most 4 bytes a character) or clearly does not (at least 1)."""
    n = len(msg)
    if isinstance(msg, (bytes, bytearray, memoryview)) or n > limit:
        return n <= limit
    return 4 * n <= limit or len(msg.encode("utf-8", "surrogatepass")) <= limit


@dataclass
class _Partial:
    """An unfinished inbound message: never acked, so it may be dropped at any time (the
    sender still holds every fragment and replays them after a reconnect)."""

    kind: str
    parts: list | None  # None: the content is not kept (the stream no longer delivers)
    started: float = 0.0  # when its first fragment arrived
    last: int = 0  # seq of its newest fragment
    size: int = 0  # payload bytes of the message so far
    held: int = 0  # of those, bytes kept in `parts`


@dataclass
class _OutStream:
    next_seq: int = 1
    buf: deque[_Out] = field(default_factory=deque)
    evicted_upto: int = 0  # highest seq dropped from the buffer without an ack
    acked: int = 0  # highest seq the peer acknowledged


class RetiredIds:
    """Stream ids whose state was forgotten (PROTOCOL.md §8a), as sorted disjoint half-open
    ranges. Ids are allocated increasingly and mostly finish in order, so this is one range
    plus one per stream still alive below the newest retired id: bounded by the live
    streams, never by the number of streams the session has seen."""

    def __init__(self) -> None:
        self._lo: list[int] = []  # range starts, sorted
        self._hi: list[int] = []  # matching exclusive ends

    def __contains__(self, sid: int) -> bool:
        i = bisect.bisect_right(self._lo, sid) - 1
        return i >= 0 and sid < self._hi[i]

    def add(self, sid: int) -> None:
        if sid in self:
            return
        i = bisect.bisect_right(self._lo, sid)  # ranges [0, i) start at or before sid
        joins_left = i > 0 and self._hi[i - 1] == sid
        joins_right = i < len(self._lo) and self._lo[i] == sid + 1
        if joins_left and joins_right:
            self._hi[i - 1] = self._hi[i]
            del self._lo[i], self._hi[i]
        elif joins_left:
            self._hi[i - 1] = sid + 1
        elif joins_right:
            self._lo[i] = sid
        else:
            self._lo.insert(i, sid)
            self._hi.insert(i, sid + 1)

    def ranges(self) -> list[tuple[int, int]]:
        return list(zip(self._lo, self._hi))


class Link:
    """One connection's share of the state: outbox, heartbeat clock, close decision."""

    def __init__(self, config: Config, now: float) -> None:
        self.config = config
        self.outbox: list[bytes] = []
        self.ready = False  # hello/welcome done
        self.close: tuple[int, str] | None = None  # set => the shell closes with this code
        self.last_recv = now
        self.last_ping = now
        self.handshake_deadline = now + config.handshake_timeout

    def fail(self, code: int, message: str) -> None:
        if self.close is None:
            self.close = (int(code), message)

    def send(self, frame: Frame) -> None:
        self.outbox.append(encode(frame))

    def take(self) -> list[bytes]:
        out, self.outbox = self.outbox, []
        return out


class Budget:
    """Replay bytes and items buffered by all sessions of one server (the server-wide memory
    bound). Items count too: an item with no payload (``end``, ``error``, an empty message)
    still holds a frame and its bookkeeping, so bytes alone would let many sessions pile up
    ``replay_max_count`` of them each without ever reaching the byte bound."""

    def __init__(self) -> None:
        self.bytes = 0
        self.items = 0
        self.sessions = 0  # sessions holding buffered items
        # Sessions holding items, and those of them *parked*: stalled (nothing acked for
        # stall_after), so they no longer count as overdraft holders (PROTOCOL.md §6).
        self.holders: set[_Endpoint] = set()
        self.parked: set[_Endpoint] = set()
        self.parked_bytes = 0
        self.parked_items = 0
        self.partial_bytes = 0  # unfinished inbound messages, all sessions (server_max_partial_bytes)

    def park(self, ep: "_Endpoint") -> None:
        """Take a holder's buffer out of the shared pool (PROTOCOL.md §6 parking)."""
        self.parked.add(ep)
        self.parked_bytes += ep.buffered_bytes
        self.parked_items += ep.buffered_items

    @property
    def active_holders(self) -> int:
        return self.sessions - len(self.parked)

    @property
    def active_bytes(self) -> int:
        return self.bytes - self.parked_bytes

    @property
    def active_items(self) -> int:
        return self.items - self.parked_items


class _Endpoint:
    """One end's per-session state, kept across connections."""

    def __init__(self, config: Config, mine: frozenset[str], theirs: frozenset[str],
                 budget: Budget | None = None, name: str = "") -> None:
        self.config = config
        self.budget = budget
        self.name = name  # the session id (server side): orders parking deterministically
        self.mine, self.theirs = mine, theirs  # item types this end may send / receive
        self.out: dict[int, _OutStream] = {}
        self.recv: dict[int, int] = {}  # last contiguous seq received per stream
        self.acked_sent: dict[int, int] = {}  # what the peer has been told via acks
        self.partial: dict[int, _Partial] = {}
        self.partial_bytes = 0  # kept in unfinished inbound messages (bounded per session)
        # Retirement (PROTOCOL.md §8a): `finished` streams are over on this end (terminal item
        # pushed / received, or reset); once nothing of theirs is unacked either way their
        # state is dropped and the id goes to `retired`. `late` holds acks owed for items
        # that arrive on retired streams (cleared by every ack sent, so it stays small).
        self.finished: set[int] = set()
        self.retired = RetiredIds()
        self.late: dict[int, int] = {}
        self.buffered_bytes = 0
        self.buffered_items = 0
        self._order = 0
        # Observation points for the tester's scenario coverage (read, never acted on):
        # what the last resume replayed, as (stream, seq) in send order, and how often a
        # producer found this end's own replay bounds reached and had to wait.
        self.replayed: list[tuple[int, int]] = []
        self.full_waits = 0
        self.partials_dropped = 0  # unfinished messages dropped at a disconnect (replayed whole)
        self.link: Link | None = None
        self.ack_due: float | None = None
        self.ack_pending = 0
        self.context: dict[str, Any] = {}

    # -- sending --------------------------------------------------------------------------
    def has_capacity(self) -> bool:
        c = self.config
        if "no_backpressure" in c.mutants:
            return True
        if self.buffered_bytes >= c.replay_max_bytes or self.buffered_items >= c.replay_max_count:
            if "trim_when_full" not in c.mutants:
                self.full_waits += 1
                return False
        b = self.budget
        if b is None:
            return True
        if self in b.parked:
            return False  # it stopped reading: it keeps what it holds, and gets no more
        # Parked sessions (stalled: up to fair_stalled_sessions) are out of the shared pool:
        # what they hold neither fills it nor takes an overdraft slot (fair shares).
        if b.active_bytes < c.server_max_buffered_bytes and b.active_items < c.server_max_buffered_items:
            return True
        # Over the server-wide bound: a session with nothing buffered may still produce one
        # message, but only while fewer than `server_overdraft_sessions` sessions hold
        # buffered items, so the total stays below the bound + a few messages (not one
        # message per session: 100 idle sessions x 2 MiB would be 200 MiB resident).
        return self.buffered_items == 0 and b.active_holders < c.server_overdraft_sessions

    def wants_pool(self) -> bool:
        """Below its own bounds and not parked: only the shared pool can refuse it room."""
        c, b = self.config, self.budget
        return (b is not None and self not in b.parked and self.buffered_bytes < c.replay_max_bytes
                and self.buffered_items < c.replay_max_count)

    def account(self, size: int, items: int) -> None:
        before = self.buffered_items
        self.buffered_bytes += size
        self.buffered_items += items
        b = self.budget
        if b is not None:
            b.bytes += size
            b.items += items
            if self in b.parked:
                b.parked_bytes += size
                b.parked_items += items
            if (self.buffered_items > 0) != (before > 0):
                if self.buffered_items > 0:
                    b.sessions += 1
                    b.holders.add(self)
                else:  # everything acked (or dropped): no longer a holder, nor parked
                    b.sessions -= 1
                    b.holders.discard(self)
                    b.parked.discard(self)

    def oldest_unacked(self) -> float:
        """When the oldest item still buffered was produced (INF if none)."""
        return min((st.buf[0].t for st in self.out.values() if st.buf), default=INF)

    def push(self, t: str, sid: int, now: float, fields: dict | None = None, payload: bytes = b"") -> int:
        """Sequence and buffer one item. Encodes first: a value that cannot be sent (not
        JSON, a header the peer would refuse) raises ValueError/TypeError before anything
        changes, so the stream's sequence has no hole."""
        st = self.out.get(sid)
        seq = st.next_seq if st is not None else 1
        data = encode(Frame(t, {"s": sid, "q": seq, **(fields or {})}, payload))
        header = int.from_bytes(data[:4], "big")
        if header > self.config.max_header_size or len(data) > self.config.max_frame_size:
            raise ValueError(f"{t} frame of {len(data)} bytes (header {header}) exceeds max_frame_size "
                             f"({self.config.max_frame_size}) or max_header_size ({self.config.max_header_size})")
        if st is None:
            st = self.out[sid] = _OutStream()
        st.next_seq += 1
        self._order += 1
        st.buf.append(_Out(seq, self._order, data, len(payload), now))
        self.account(len(payload), 1)
        if "trim_when_full" in self.config.mutants:
            self._trim_oldest()
        if self.link is not None and self.link.ready and self.link.close is None:
            self.link.outbox.append(data)
        return seq

    def set_context(self, key: str, value: Any, now: float) -> None:
        """Set one context key and send it as a `ctx` item. A key or value the peer would
        refuse (not a string key, not JSON, nested deeper than the header limit, too large)
        raises TypeError/ValueError and changes nothing."""
        if not isinstance(key, str):
            raise TypeError(f"context keys are strings, got {type(key).__name__}")
        if not depth_ok(value, MAX_DEPTH - 1):
            raise ValueError(f"context value nests deeper than {MAX_DEPTH - 1} levels")
        self.push("ctx", 0, now, {"key": key, "value": value})  # encodes (and checks) first
        self.context[key] = value

    def push_message(self, sid: int, msg: str | bytes, now: float) -> None:
        kind, parts = split_message(msg, self.config.fragment_size, mutants=self.config.mutants)
        short_means_last = kind == "b" and "fin_by_short_fragment" in self.config.mutants
        for i, part in enumerate(parts):
            fin = len(part) < self.config.fragment_size if short_means_last else i == len(parts) - 1
            self.push("data", sid, now, {"fin": fin, "k": kind}, part)

    def _trim_oldest(self) -> None:
        """Mutant ``trim_when_full``: the replay buffer is a ring; above its bounds the oldest
        unacknowledged item is dropped without a trace (no ``evicted_upto``)."""
        c = self.config
        while self.buffered_bytes > c.replay_max_bytes or self.buffered_items > c.replay_max_count:
            oldest = min((st for st in self.out.values() if st.buf), key=lambda st: st.buf[0].order)
            item = oldest.buf.popleft()
            self.account(-item.size, -1)

    def _drop_through(self, st: _OutStream, seq: int) -> None:
        while st.buf and st.buf[0].seq <= seq:
            item = st.buf.popleft()
            self.account(-item.size, -1)

    def check_acks(self, acks: dict[int, int]) -> None:
        """Raise 4002 if any position acks an item never sent; changes nothing."""
        for sid, seq in acks.items():
            if sid in self.retired:
                continue  # nothing left to release: a late or repeated ack
            st = self.out.get(sid)
            sent = st.next_seq - 1 if st else 0
            if seq > sent:
                raise ProtocolError(
                    CloseCode.PROTOCOL_VIOLATION, f"ack for stream {sid} up to seq {seq}, but only {sent} were sent"
                )

    def on_acks(self, acks: dict[int, int]) -> None:
        """All or nothing: a map with one bad position is refused whole (validate, then apply),
        so a rejected resume or ack leaves the buffers as they were."""
        self.check_acks(acks)
        for sid, seq in acks.items():
            st = self.out.get(sid)
            if st is not None and sid not in self.retired:
                st.acked = max(st.acked, seq)
                self._drop_through(st, seq)
                self.try_retire(sid)

    # -- retirement -----------------------------------------------------------------------
    def finish_stream(self, sid: int) -> None:
        """This end is done with `sid` (terminal item pushed or received, or reset)."""
        if sid != 0 and sid not in self.retired:
            self.finished.add(sid)
            self.try_retire(sid)

    def try_retire(self, sid: int) -> None:
        """Forget a finished stream once all its items both ways are acked (ours by the
        peer, the peer's in an ack we sent), so nothing of it can need replay or an ack.
        An item evicted unacked counts as unacked: the stream must live on until a resume
        reports it lost (found by StreamMachine: a cancelled stream's evicted ``error`` let
        the stream retire, and the resume said ``recovered`` with the client still waiting)."""
        if sid not in self.finished:
            return
        st = self.out.get(sid)
        if st is not None and (st.buf or st.evicted_upto > st.acked):
            return
        if self.acked_sent.get(sid, 0) < self.recv.get(sid, 0):
            return
        self.finished.discard(sid)
        self.out.pop(sid, None)
        self.recv.pop(sid, None)
        self.acked_sent.pop(sid, None)
        p = self.partial.pop(sid, None)
        if p is not None:
            self._held(-p.held)
        self.retired.add(sid)

    def retire_finished(self) -> None:
        for sid in sorted(self.finished):
            self.try_retire(sid)

    def replay(self) -> None:
        """Queue every unacked item on the (new) link, in original global order."""
        assert self.link is not None
        items = sorted(((it.order, sid, it) for sid, st in self.out.items() for it in st.buf), key=lambda x: x[0])
        if "replay_skips_first" in self.config.mutants:
            items = items[1:]
        self.replayed = [(sid, it.seq) for _, sid, it in items]
        self.link.outbox.extend(it.data for _, _, it in items)

    def evictable(self):
        """The out-streams whose items may age out (see ``evict_aged``); the eviction timer's
        deadline must read the same set, or it fires forever without evicting."""
        return (st for sid, st in self.out.items() if sid != 0 and sid not in self.finished)

    def evict_aged(self, now: float, max_age: float) -> None:
        """Evict items whose age reached max_age. Compared as ``t + max_age <= now``, the very
        expression `next_deadline` uses: ``t <= now - max_age`` can round the other way, and
        then the timer fires forever without evicting (a busy loop found by HostileMachine).

        Stream 0 is never evicted: its ``ctx`` items are session state both ends must agree on,
        and a lost one would leave the contexts silently different (found by StreamMachine:
        ``set_context`` then a 25 s outage). Nor is a finished stream (its terminal item
        pushed): the client may have read it whole and retired it with its ack lost in
        flight, and a retired stream is in no ``recv`` map, so the resume could not tell that
        apart from a loss (found by the 20,000-example run: reset for a stream read whole)."""
        for st in self.evictable():
            while st.buf and st.buf[0].t + max_age <= now:
                self._evict_first(st)

    def _evict_first(self, st: _OutStream) -> None:
        """Drop the oldest unacked item of `st` without an ack: the next resume reports the
        stream lost (`evicted_upto` beyond the peer's position), never a silent gap."""
        item = st.buf.popleft()
        self.account(-item.size, -1)
        if "evict_without_reset" not in self.config.mutants:
            st.evicted_upto = item.seq

    def sheddable(self) -> list[int]:
        """Streams with unacked items that pressure may evict: every stream but 0 (context
        items are session state: a session holding only those is ended instead)."""
        return [sid for sid, st in self.out.items() if sid != 0 and st.buf]

    def evict_unacked(self) -> list[int]:
        """Evict every unacked item of `sheddable()` streams, finished ones included (under
        pressure the server may report a stream lost that the client read whole and retired
        with its ack lost: it ignores `lost` for streams it no longer has). Returns them."""
        sids = self.sheddable()
        for sid in sids:
            st = self.out[sid]
            while st.buf:
                self._evict_first(st)
        return sids

    # -- receiving ------------------------------------------------------------------------
    def accept(self, f: Frame, now: float) -> bool:
        """Dedupe and gap detection: False = duplicate (drop), True = next in order."""
        if f.t not in self.theirs:
            raise ProtocolError(CloseCode.PROTOCOL_VIOLATION, f"{f.t!r} items may not be sent in this direction")
        if f.sid in self.retired:
            # A replayed or in-flight item of a forgotten stream: a duplicate, but the peer
            # may still hold it unacked (its ack was lost with a connection), so ack it.
            self.late[f.sid] = max(self.late.get(f.sid, 0), f.seq)
            self._ack_later(len(f.payload) + 1, now)
            return False
        last = self.recv.get(f.sid, 0)
        p = self.partial.get(f.sid)
        top = p.last if p is not None else last  # fragments of an unfinished message count
        if f.seq <= top and "no_dedupe" not in self.config.mutants:
            if f.seq == top or "dedupe_last_only" not in self.config.mutants:
                return False
        if f.seq > top + 1:
            raise ProtocolError(
                CloseCode.PROTOCOL_VIOLATION, f"gap on stream {f.sid}: got seq {f.seq}, expected {top + 1}"
            )
        if p is not None and f.t != "data":
            raise ProtocolError(CloseCode.PROTOCOL_VIOLATION, f"{f.t!r} inside an unfinished message on stream {f.sid}")
        if f.t == "data" and not f.h["fin"] and "partial_per_connection" not in self.config.mutants:
            return True  # acked with its message's last fragment (PROTOCOL.md §6); see reassemble
        self.recv[f.sid] = max(last, f.seq)
        self._ack_later(len(f.payload) + 1 + (p.size if p is not None else 0), now)
        return True

    def _ack_later(self, size: int, now: float) -> None:
        self.ack_pending += size
        if self.ack_pending >= self.config.ack_bytes and self.link is not None:
            self.send_ack(now)
        elif self.ack_due is None:
            self.ack_due = now + self.config.ack_interval

    def reassemble(self, f: Frame, keep: bool = True, now: float = 0.0) -> str | bytes | None:
        """Add a data fragment; the whole message once `fin` arrives, else None. With
        `keep` False (nobody will read the stream) only its sequencing is tracked."""
        c = self.config
        p = self.partial.get(f.sid)
        if p is None:
            p = _Partial(f.h["k"], [] if keep else None, now)
        if p.kind != f.h["k"]:
            raise ProtocolError(CloseCode.PROTOCOL_VIOLATION, f"stream {f.sid}: fragment kind changed mid-message")
        n = len(f.payload)
        if p.size + n > c.max_message_size:
            raise ProtocolError(CloseCode.MESSAGE_TOO_LARGE, f"stream {f.sid}: message exceeds {c.max_message_size} bytes")
        if not keep and p.parts is not None:  # the stream stopped delivering mid-message
            self._held(-p.held)
            p.parts, p.held = None, 0
        if p.parts is not None:
            if not f.h["fin"] and self.partial_bytes + n > c.max_message_size:
                raise ProtocolError(CloseCode.MESSAGE_TOO_LARGE,
                                    f"unfinished messages of this session exceed {c.max_message_size} bytes")
            if p.kind == "t":
                try:  # every text fragment is whole characters, so receivers decode as they go
                    p.parts.append(str(f.payload, "utf-8"))
                except UnicodeDecodeError:
                    raise ProtocolError(
                        CloseCode.MALFORMED_FRAME, f"stream {f.sid}: text fragment {f.seq} splits a UTF-8 character"
                    ) from None
            else:
                p.parts.append(f.payload)  # a view into the received frame: copied once, by the join
        p.size += n
        p.last = f.seq
        if not f.h["fin"]:
            if p.parts is not None:
                p.held += n
                self._held(n)
            self.partial[f.sid] = p
            return None
        if self.partial.pop(f.sid, None) is not None:
            self._held(-p.held)
        if p.parts is None:
            return None
        return b"".join(p.parts) if p.kind == "b" else "".join(p.parts)

    def _held(self, n: int) -> None:
        self.partial_bytes += n
        if self.budget is not None:
            self.budget.partial_bytes += n

    def drop_partials(self) -> None:
        """Forget every unfinished inbound message: none was acked, so the sender replays
        them whole after a reconnect (connection end, resume, server-wide pressure)."""
        self._held(-self.partial_bytes)
        self.partials_dropped += len(self.partial)
        self.partial.clear()

    def ack_map(self) -> dict[int, int]:
        if "ack_wrong_stream" in self.config.mutants and self.recv:
            top = max(self.recv.values())
            return {s: top for s in self.recv if self.acked_sent.get(s, 0) < top}
        return {s: q for s, q in self.recv.items() if self.acked_sent.get(s, 0) < q}

    def take_late(self) -> dict[int, int]:
        late, self.late = self.late, {}
        return late

    def send_ack(self, now: float, t: str = "ack") -> None:
        assert self.link is not None
        a = self.ack_map()
        late = self.take_late()
        if a or late or t != "ack":
            self.link.send(Frame(t, {"a": {**late, **a}}))
            if t != "ack":
                self.link.last_ping = now
        self.acked_sent.update(a)  # not `late`: retired streams keep no entry
        self.ack_due, self.ack_pending = None, 0
        for sid in a:
            self.try_retire(sid)

    # -- connection timers ----------------------------------------------------------------
    def link_deadline(self) -> float:
        link = self.link
        if link is None or link.close is not None:
            return INF
        if not link.ready:
            return link.handshake_deadline
        c = self.config
        d = min(link.last_recv + c.dead_after, link.last_ping + c.heartbeat_interval)
        return min(d, self.ack_due) if self.ack_due is not None else d

    def link_timer(self, now: float) -> None:
        link = self.link
        if link is None or link.close is not None:
            return
        if not link.ready:
            if now >= link.handshake_deadline:
                link.fail(CloseCode.HANDSHAKE_TIMEOUT, "no hello/welcome within handshake_timeout")
            return
        if now >= link.last_recv + self.config.dead_after:
            link.fail(CloseCode.PEER_DEAD, f"nothing received for {self.config.dead_after}s")
        elif now >= link.last_ping + self.config.heartbeat_interval:
            self.send_ack(now, "ping")
        elif self.ack_due is not None and now >= self.ack_due:
            self.send_ack(now)

    def on_control(self, f: Frame, now: float) -> None:
        self.on_acks(f.h["a"])
        if f.t == "ping":
            self.send_ack(now, "pong")


def _decode(config: Config, data: bytes) -> Frame:
    return decode(data, max_frame_size=config.max_frame_size, max_header_size=config.max_header_size)


# ==================================================================================== server
@dataclass(frozen=True)
class Opened:
    session: str
    sid: int
    payload: str | bytes


@dataclass(frozen=True)
class Message:
    session: str
    sid: int
    data: str | bytes


@dataclass(frozen=True)
class Cancelled:
    session: str
    sid: int


@dataclass(frozen=True)
class ContextSet:
    session: str
    key: str
    value: Any


@dataclass(frozen=True)
class StreamGone:
    """The server must stop the app of this stream without sending anything (lost/expired)."""

    session: str
    sid: int
    reason: str


class ServerSession:
    def __init__(self, config: Config, sid: str, token: str, now: float, budget: Budget) -> None:
        self.id, self.token = sid, token
        self.ep = _Endpoint(config, frozenset(S2C_ITEMS), frozenset(C2S_ITEMS), budget, name=sid)
        self.open: set[int] = set()  # streams whose app runs (no end/error pushed yet)
        self.max_sid = 0
        self.disconnected_at: float | None = now
        self.attached_at = now  # the last hello that created or resumed it
        # Streams reported `lost` in the last welcome: retired once the client is known to
        # have read that welcome (it sent anything after it), else the next resume must
        # report them again (PROTOCOL.md §8a).
        self.lost_unconfirmed: set[int] = set()


class ServerConnection(Link):
    def __init__(self, proto: "ServerProtocol", now: float) -> None:
        super().__init__(proto.config, now)
        self.proto = proto
        self.session: ServerSession | None = None

    def receive(self, data: bytes, now: float) -> None:
        """One WebSocket message in. Protocol errors set `close` instead of raising."""
        if self.close is not None:
            return
        self.last_recv = now
        try:
            f = _decode(self.config, data)
            if self.session is None:
                self.proto._hello(self, f, now)
            else:
                self.proto._frame(self.session, f, now, self)
        except ProtocolError as exc:
            self.fail(exc.code, exc.message)

    def next_deadline(self) -> float:
        if self.session is None:
            return INF if self.close else self.handshake_deadline
        return self.session.ep.link_deadline() if self.session.ep.link is self else INF

    def on_timer(self, now: float) -> None:
        if self.session is None:
            if self.close is None and now >= self.handshake_deadline:
                self.fail(CloseCode.HANDSHAKE_TIMEOUT, "no hello within handshake_timeout")
        elif self.session.ep.link is self:
            self.session.ep.link_timer(now)


class ServerProtocol:
    """Registry of sessions for one server process; `epoch` changes on every restart."""

    def __init__(self, config: Config = Config(), rng: random.Random | None = None) -> None:
        self.config = config
        self._token = make_token_source(rng)
        self.epoch = self._token()[:16]
        self.sessions: dict[str, ServerSession] = {}
        self._expired: OrderedDict[str, None] = OrderedDict()  # recently expired ids, bounded
        self.events: list[Any] = []
        self.budget = Budget()
        self.waiting: dict[str, int] = {}  # session id -> its apps waiting for room (want_room)
        # Sessions whose data pressure evicted (or that it ended), newest last, bounded like
        # `_expired`: their resume may be reset (the tester grants exactly these).
        self.shed: OrderedDict[str, None] = OrderedDict()
        self.shed_sessions = 0  # sessions whose unacked data pressure evicted (or ended them)
        self.cut_sessions = 0  # connected sessions cut (1013) because they stalled under pressure

    def connect(self, now: float) -> ServerConnection:
        return ServerConnection(self, now)

    def drain_events(self) -> list[Any]:
        out, self.events = self.events, []
        return out

    # -- handshake ------------------------------------------------------------------------
    def _hello(self, conn: ServerConnection, f: Frame, now: float) -> None:
        if f.t != "hello":
            raise ProtocolError(CloseCode.PROTOCOL_VIOLATION, f"first frame must be hello, got {f.t!r}")
        if f.h["v"] != VERSION:
            raise ProtocolError(CloseCode.UNSUPPORTED_VERSION, f"version {str(f.h['v'])[:20]} not supported (this server speaks {VERSION})")
        r = f.h.get("resume")
        if r is not None and not r["recv"] and "empty_resume_is_new" in self.config.mutants:
            r = None  # `if resume.get("recv"):` -- a client that has received nothing yet is "new"
        lost: dict[int, str] = {}
        reason = None
        s = None
        adopted = False
        if r is not None:
            if r["epoch"] != self.epoch and "recovered_after_restart" in self.config.mutants and (
                r["session"] not in self.sessions
            ):
                # Trusts a resume token it can still verify after a restart and rebuilds the
                # session, empty, under the client's id: "recovered", though its state died.
                s = ServerSession(self.config, r["session"], r["token"], now, self.budget)
                self.sessions[s.id] = s
                adopted = True
            elif r["epoch"] != self.epoch:
                reason = "epoch_changed"
            else:
                s = self.sessions.get(r["session"])
                if s is None:
                    reason = "session_expired" if r["session"] in self._expired else "unknown_session"
                elif not hmac.compare_digest(s.token.encode(), r["token"].encode("utf-8", "surrogatepass")) and (
                    "token_not_checked" not in self.config.mutants
                ):
                    raise ProtocolError(CloseCode.FORGED_TOKEN, "resume token does not match the session")
        if s is None:
            if len(self.sessions) >= self.config.max_sessions:
                raise ProtocolError(CloseCode.SERVER_BUSY, f"server holds its maximum of {self.config.max_sessions} sessions")
            s = ServerSession(self.config, self._token()[:24], self._token(), now, self.budget)
            self.sessions[s.id] = s
            outcome = "new" if r is None else "reset"
        else:
            ep = s.ep
            peer_recv = {} if adopted else r["recv"]
            if "no_dedupe" not in self.config.mutants:
                ep.on_acks(peer_recv)  # raises on ack beyond sent
            for sid, st in ep.out.items():
                if st.evicted_upto > peer_recv.get(sid, 0):
                    lost[sid] = "replay_evicted"
            for sid in lost:
                st = ep.out[sid]
                ep._drop_through(st, st.next_seq)
                if sid in s.open:
                    s.open.discard(sid)
                    self.events.append(StreamGone(s.id, sid, "replay_evicted"))
            s.lost_unconfirmed = set(lost)
            outcome = "reset" if lost else "recovered"
            reason = "replay_evicted" if lost else None
            if "recovered_despite_loss" in self.config.mutants and lost:
                outcome, reason = "recovered", None
            ep.drop_partials()  # the new connection replays them from their first fragment
            old = ep.link
            if old is not None and old is not conn and "no_fencing" not in self.config.mutants:
                old.fail(CloseCode.SUPERSEDED, "a newer connection resumed this session")
            if "context_not_restored" in self.config.mutants:
                ep.context.clear()
        conn.session = s
        ep = s.ep
        ep.link = conn
        s.disconnected_at = None
        s.attached_at = now
        if "seq_restart_per_connection" in self.config.mutants:
            for st in ep.out.values():
                st.next_seq = 1
        welcome = {"v": VERSION, "session": s.id, "token": s.token, "epoch": self.epoch, "outcome": outcome,
                   "recv": dict(ep.recv), "lost": lost}
        if reason:
            welcome["reason"] = reason
        conn.send(Frame("welcome", welcome))
        ep.acked_sent = dict(ep.recv)
        ep.ack_due, ep.ack_pending = None, 0
        ep.retire_finished()  # the welcome's recv told the client all it needs
        conn.ready = True
        conn.last_ping = now
        ep.replay()

    # -- established ----------------------------------------------------------------------
    def _frame(self, s: ServerSession, f: Frame, now: float, conn: ServerConnection) -> None:
        ep = s.ep
        if "no_fencing" in self.config.mutants and ep.link is not conn:
            ep.link = conn  # the connection that spoke last owns the session
        if ep.link is not conn or conn.close is not None:
            return  # a fenced (superseded) connection: ignore
        if s.lost_unconfirmed:  # the client has read our welcome, with its `lost`
            for sid in sorted(s.lost_unconfirmed):
                st = ep.out.get(sid)
                if st is not None:
                    st.evicted_upto = 0  # the loss was reported and read: nothing is owed
                ep.finish_stream(sid)
            s.lost_unconfirmed.clear()
        if f.t in ("ack", "ping", "pong"):
            ep.on_control(f, now)
            return
        if f.t in ("hello", "welcome"):
            raise ProtocolError(CloseCode.PROTOCOL_VIOLATION, f"unexpected {f.t!r} on an established connection")
        if f.t != "ctx" and f.sid in ep.retired:
            ep.accept(f, now)  # a forgotten stream: a duplicate, acked and dropped (§8a)
            return
        if f.t == "open" and f.sid <= s.max_sid and f.sid not in ep.recv:
            raise ProtocolError(CloseCode.PROTOCOL_VIOLATION, f"stream ids must increase; {f.sid} after {s.max_sid}")
        if f.t == "open" and f.sid > s.max_sid + 1:
            # Consecutive ids keep the retired ids one range per live stream: skipped ids
            # would each cost a range for the life of the session (memory without a bound).
            raise ProtocolError(CloseCode.PROTOCOL_VIOLATION, f"stream ids are consecutive; {f.sid} after {s.max_sid}")
        if f.t != "open" and f.t != "ctx" and f.seq == 1 and f.sid not in ep.recv:
            raise ProtocolError(CloseCode.PROTOCOL_VIOLATION, f"{f.t!r} on stream {f.sid}, which was never opened")
        if f.t == "open" and f.seq != 1 and f.sid in ep.recv and f.seq > ep.recv[f.sid]:
            raise ProtocolError(CloseCode.PROTOCOL_VIOLATION, f"open must be the first item of stream {f.sid}")
        if not ep.accept(f, now):
            return
        if f.t == "ctx":
            ep.context[f.h["key"]] = f.h["value"]
            self.events.append(ContextSet(s.id, f.h["key"], f.h["value"]))
        elif f.t == "open":
            s.max_sid = max(s.max_sid, f.sid)
            payload = str(f.payload, "utf-8", "replace") if f.h["k"] == "t" else bytes(f.payload)
            if len(s.open) >= self.config.max_streams_per_session:
                ep.push("error", f.sid, now, {"reason": "too_many_streams"})
                ep.finish_stream(f.sid)
            else:
                s.open.add(f.sid)
                self.events.append(Opened(s.id, f.sid, payload))
        elif f.t == "data":
            msg = ep.reassemble(f, keep=f.sid in s.open, now=now)
            if msg is not None:
                self.events.append(Message(s.id, f.sid, msg))
            elif self.budget.partial_bytes > self.config.server_max_partial_bytes:
                self._shed_partials()
        elif f.t == "cancel":
            if f.sid in s.open:
                self.events.append(Cancelled(s.id, f.sid))

    def disconnected(self, conn: ServerConnection, now: float, peer_code: int | None = None) -> None:
        """The connection ended. `peer_code` 1000 (the client closed its session on purpose)
        ends the session at once instead of keeping it for `session_ttl`."""
        ours = conn.close  # the code we closed with, if we closed first
        conn.fail(CloseCode.ABNORMAL, "connection lost")
        s = conn.session
        if (s is not None and s.ep.link is not conn and self.sessions.get(s.id) is s
                and "stale_connection_ends_session" in self.config.mutants):
            # The older connection's cleanup forgets the session the newer one still uses:
            # it keeps working until its next resume, which finds nothing to resume.
            del self.sessions[s.id]
            self._expired[s.id] = None
            return
        if s is not None and s.ep.link is conn:
            s.ep.link = None
            s.ep.drop_partials()  # never acked: replayed whole on resume
            s.disconnected_at = now
            # A final code from us (bad input) means no resume will ever come: keeping the
            # session for session_ttl would only let a misbehaving peer hold slots and memory.
            if peer_code in (CloseCode.NORMAL, CloseCode.WS_MESSAGE_TOO_BIG) or (ours is not None and ours[0] in ENDS_SESSION):
                self._end_session(s, "session_closed")
                return
            if "inflight_per_connection" in self.config.mutants:
                for st in s.ep.out.values():
                    s.ep._drop_through(st, st.next_seq)

    # -- application side -----------------------------------------------------------------
    def has_capacity(self, session: str) -> bool:
        """May the session's apps buffer another message? Its own and the shared bounds
        (`_Endpoint.has_capacity`); and a session without a connection yields to one with:
        while a connected session waits for room from the shared pool, it produces nothing
        (what it buffered could only be evicted to make that room)."""
        s = self.sessions.get(session)
        if s is None:
            return True
        if not s.ep.has_capacity():
            return False
        return s.ep.link is not None or not self._hungry()

    def want_room(self, session: str, apps: int) -> None:
        """The shell reports apps of `session` starting (+1) or ending (-1) a wait for room:
        a connected session waiting is what makes the shared pool *needed* (PROTOCOL.md §6
        "Pressure")."""
        n = self.waiting.get(session, 0) + apps
        if n > 0:
            self.waiting[session] = n
        else:
            self.waiting.pop(session, None)

    def is_open(self, session: str, sid: int) -> bool:
        s = self.sessions.get(session)
        return s is not None and sid in s.open

    def emit(self, session: str, sid: int, chunk: str | bytes, now: float) -> bool:
        s = self.sessions.get(session)
        if s is None or sid not in s.open:
            return False
        s.ep.push_message(sid, chunk, now)
        return True

    def finish(self, session: str, sid: int, now: float, error: str | None = None) -> None:
        s = self.sessions.get(session)
        if s is None or sid not in s.open:
            return
        s.open.discard(sid)
        if error is None:
            s.ep.push("end", sid, now)
        else:  # the reason may carry peer input of any size: cut it so the header always fits
            s.ep.push("error", sid, now, {"reason": clip(str(error), MAX_ERROR_REASON)})
        if "end_not_replayed" in self.config.mutants:
            st = s.ep.out[sid]
            item = st.buf.pop()  # sent once on the live link, never replayed
            s.ep.account(-item.size, -1)
        s.ep.finish_stream(sid)

    def set_context(self, session: str, key: str, value: Any, now: float) -> None:
        s = self.sessions.get(session)
        if s is not None:
            s.ep.set_context(key, value, now)

    def context(self, session: str) -> dict[str, Any]:
        s = self.sessions.get(session)
        return s.ep.context if s is not None else {}

    def _shed_partials(self) -> None:
        """Unfinished inbound messages over the server-wide bound: drop those of the
        session whose unfinished message is the oldest (a peer parking fragments, not one
        uploading now; deterministic: then by id) and close its connection with 1013.
        Nothing is lost: they were never acked, and its client replays them after
        reconnecting; the sessions that finish their messages go on."""
        def since(s: ServerSession) -> tuple[float, str]:
            return min(p.started for p in s.ep.partial.values() if p.held), s.id

        while self.budget.partial_bytes > self.config.server_max_partial_bytes:
            victim = min((s for s in self.sessions.values() if s.ep.partial_bytes), key=since)
            victim.ep.drop_partials()
            if victim.ep.link is not None:
                victim.ep.link.fail(CloseCode.TRY_AGAIN_LATER,
                                    "server busy: unfinished messages above the server-wide bound; retry later")

    # -- fair shares -----------------------------------------------------------------------
    def _claimants(self):
        """Connected sessions whose apps wait for room from the shared pool (not parked,
        below their own bounds): the sessions pressure relief serves."""
        for sid in self.waiting:
            s = self.sessions.get(sid)
            if s is not None and s.ep.link is not None and s.ep.wants_pool():
                yield s

    def _hungry(self) -> bool:
        """A connected session waits for the pool: sessions without a connection yield to
        it (what they buffered now could only be evicted to make its room)."""
        return next(self._claimants(), None) is not None

    def _reading(self, ep: _Endpoint, at: float) -> bool:
        """Holds nothing, or acked something within `stall_after` before `at`: a session
        that stopped reading itself makes no room for its own sake."""
        return ep.buffered_items == 0 or ep.oldest_unacked() + self.config.stall_after > at

    def _starving(self, now: float) -> bool:
        """A claimant that is reading is refused by the shared pool: room must be made."""
        return any(self._reading(s.ep, now) and not s.ep.has_capacity() for s in self._claimants())

    def _shed_at(self, ep: _Endpoint) -> float:
        """When a pool holder stopped reading, as far as pressure is concerned: once it
        acked nothing for `stall_after`, or `evict_grace` after it lost its connection,
        whichever comes first (losing the connection never postpones it)."""
        c = self.config
        t = ep.oldest_unacked() + c.stall_after
        if ep.link is None:
            t = min(t, self.sessions[ep.name].disconnected_at + c.evict_grace)
        return t

    def _shed_deadline(self, now: float) -> float:
        """When relief is next due: the first moment a pool holder (not parked) has stopped
        reading while a reading claimant is refused; INF if none is, or none will be
        without some change (which recomputes this)."""
        if not self.waiting:
            return INF
        refused = [s.ep for s in self._claimants() if not s.ep.has_capacity()]
        if not refused:
            return INF
        b = self.budget
        t = min((self._shed_at(ep) for ep in b.holders if ep not in b.parked), default=INF)
        return t if any(self._reading(ep, max(t, now)) for ep in refused) else INF

    def relieve(self, now: float) -> bool:
        """Make room for starving sessions (PROTOCOL.md §6 "Pressure"): while one starves,
        take the pool holder that stopped reading first (`_victim`) out of the pool -- into
        the parking while it has a free slot (it keeps everything), else shed it (`_shed`:
        its unacked data evicted and reported on resume; cut with 1013 if connected).
        True if anything changed."""
        b, c = self.budget, self.config
        changed = False
        while self._starving(now):
            victim = self._victim(now)
            if victim is None:
                break
            if len(b.parked) < c.fair_stalled_sessions:
                b.park(victim.ep)
            else:
                self._shed(victim, now)
            changed = True
        return changed

    def _victim(self, now: float) -> ServerSession | None:
        """The pool holder that stopped reading to take out first: sessions without a
        connection before connected ones, each the earliest gone (or stalled); a session
        holding only context items last (shedding ends it). Ties by session id."""
        b = self.budget
        ready = []
        for ep in b.holders:
            if ep not in b.parked and self._shed_at(ep) <= now:
                s = self.sessions[ep.name]
                gone = s.disconnected_at if ep.link is None else INF
                ready.append((not ep.sheddable(), ep.link is not None, gone, ep.oldest_unacked(), s.id))
        return self.sessions[min(ready)[-1]] if ready else None

    def _shed(self, s: ServerSession, now: float) -> None:
        """Cut `s` if it is connected, then evict its unacked data: each stream that lost
        items is stopped (its app cancelled) and reported `lost` on resume. A session
        holding only context items is ended instead (a resume gets `reset`)."""
        ep = s.ep
        if ep.link is not None:
            ep.link.fail(CloseCode.TRY_AGAIN_LATER,
                         "server busy: stalled while the shared buffer was full; unacked data evicted")
            ep.link = None  # what still arrives on it is ignored, like a fenced connection
            ep.drop_partials()
            s.disconnected_at = now
            self.cut_sessions += 1
        self.shed_sessions += 1
        self.shed[s.id] = None
        while len(self.shed) > 4096:
            self.shed.popitem(last=False)
        sids = ep.evict_unacked()
        if not sids:
            self._end_session(s, "session_expired")
            return
        for sid in sids:
            if sid in s.open:
                s.open.discard(sid)
                # Stopped, it loses what it would have sent next as well: the resume must
                # report it even when the client got every evicted item (only its acks were
                # late), or the stream stays open on both ends with no app to answer it.
                ep.out[sid].evicted_upto = ep.out[sid].next_seq
                self.events.append(StreamGone(s.id, sid, "replay_evicted"))

    def _under_pressure(self) -> bool:
        b, c = self.budget, self.config
        return b.active_bytes >= c.server_max_buffered_bytes or b.active_items >= c.server_max_buffered_items

    def _stall_deadline(self) -> float:
        """When the next holder stalls, if parking it could matter (the server-wide bound
        is reached and a parking slot is free); INF otherwise."""
        b, c = self.budget, self.config
        if len(b.parked) >= c.fair_stalled_sessions or not self._under_pressure():
            return INF
        return min((ep.oldest_unacked() for ep in b.holders if ep not in b.parked), default=INF) + c.stall_after

    def park_stalled(self, now: float) -> bool:
        """Park holders that acked nothing for stall_after (oldest first, then by session
        id: deterministic) while slots are free; True if any was parked. A parked session
        keeps its buffer (nothing is dropped) but produces nothing more until everything
        it holds is acked, when it leaves the parking; meanwhile what it holds is out of
        the shared pool and it takes none of the overdraft slots."""
        b, c = self.budget, self.config
        if self._stall_deadline() > now:
            return False
        stalled = sorted((t, ep.name) for ep in b.holders if ep not in b.parked
                         and (t := ep.oldest_unacked()) + c.stall_after <= now)
        changed = False
        for _, name in stalled[: c.fair_stalled_sessions - len(b.parked)]:
            b.park(self.sessions[name].ep)
            changed = True
        return changed

    # -- session timers -------------------------------------------------------------------
    def next_deadline(self, now: float = -INF) -> float:
        """The next moment `on_timer` has work, as of `now` (pass it: relief depends on
        which waiting sessions are still reading then)."""
        d = min(self._stall_deadline(), self._shed_deadline(now))
        for s in self.sessions.values():
            if s.disconnected_at is not None:
                d = min(d, self._ttl_origin(s) + self.config.session_ttl)
                oldest = min((st.buf[0].t for st in s.ep.evictable() if st.buf), default=INF)
                d = min(d, max(oldest + self.config.replay_max_age, s.disconnected_at))
        return d

    def on_timer(self, now: float) -> None:
        self.park_stalled(now)
        self.relieve(now)
        for s in list(self.sessions.values()):
            if s.disconnected_at is None:
                continue
            if now >= self._ttl_origin(s) + self.config.session_ttl:
                self._end_session(s, "session_expired")
            else:
                s.ep.evict_aged(now, self.config.replay_max_age)

    def _ttl_origin(self, s: ServerSession) -> float:
        """When the session's time-to-live started: its disconnect (mutant
        ``ttl_from_last_resume``: the hello that last attached it)."""
        if "ttl_from_last_resume" in self.config.mutants:
            return s.attached_at
        return s.disconnected_at

    def _end_session(self, s: ServerSession, reason: str) -> None:
        del self.sessions[s.id]
        self.waiting.pop(s.id, None)
        for st in s.ep.out.values():  # release its share of the server-wide budget
            s.ep._drop_through(st, st.next_seq)
        self._expired[s.id] = None
        while len(self._expired) > 4096:
            self._expired.popitem(last=False)
        for sid in sorted(s.open):
            self.events.append(StreamGone(s.id, sid, reason))
        s.open.clear()

    def stats(self) -> dict[str, int]:
        ss = self.sessions.values()
        return {
            "sessions": len(self.sessions),
            "connected": sum(1 for s in ss if s.ep.link is not None),
            "open_streams": sum(len(s.open) for s in ss),
            "buffered_bytes": sum(s.ep.buffered_bytes for s in ss),
            "session_buffered_bytes_max": max((s.ep.buffered_bytes for s in ss), default=0),
            "buffered_items": sum(s.ep.buffered_items for s in ss),
            "parked_sessions": len(self.budget.parked),
            "parked_bytes": self.budget.parked_bytes,
            "shed_sessions": self.shed_sessions,
            "cut_sessions": self.cut_sessions,
        }


# ==================================================================================== client
@dataclass(frozen=True)
class Welcome:
    outcome: str  # new | recovered | reset
    reason: str | None
    lost: dict[int, str]


@dataclass(frozen=True)
class Chunk:
    sid: int
    data: str | bytes


@dataclass(frozen=True)
class Ended:
    sid: int


@dataclass(frozen=True)
class Failed:
    """Sequenced `error` item: the server app failed (or was cancelled)."""

    sid: int
    reason: str


@dataclass(frozen=True)
class Reset:
    """The stream's data is unrecoverable (session reset, replay evicted)."""

    sid: int
    reason: str


@dataclass(frozen=True)
class ClientContextSet:
    key: str
    value: Any


class ClientProtocol:
    """One client session across any number of connections."""

    def __init__(self, config: Config = Config()) -> None:
        self.config = config
        self.session: str | None = None
        self.token: str | None = None
        self.epoch: str | None = None
        self._new_endpoint()
        self.events: list[Any] = []

    def _new_endpoint(self) -> None:
        self.ep = _Endpoint(self.config, frozenset(C2S_ITEMS), frozenset(S2C_ITEMS))
        self.streams: set[int] = set()  # opened and not yet ended/failed/reset
        self.next_sid = 1

    @property
    def link(self) -> Link | None:
        return self.ep.link

    @property
    def context(self) -> dict[str, Any]:
        return self.ep.context

    def drain_events(self) -> list[Any]:
        out, self.events = self.events, []
        return out

    # -- connections ----------------------------------------------------------------------
    def connect(self, now: float) -> Link:
        link = Link(self.config, now)
        hello: dict[str, Any] = {"v": VERSION}
        if self.session is not None:
            hello["resume"] = {"session": self.session, "token": self.token, "epoch": self.epoch,
                               "recv": dict(self.ep.recv)}
        link.send(Frame("hello", hello))
        self.ep.link = link
        return link

    def disconnected(self, now: float) -> None:
        if self.ep.link is not None:
            self.ep.link.fail(CloseCode.ABNORMAL, "connection lost")
        self.ep.link = None
        self.ep.drop_partials()  # never acked: the server replays them whole

    def receive(self, data: bytes, now: float) -> None:
        link = self.ep.link
        if link is None or link.close is not None:
            return
        link.last_recv = now
        try:
            f = _decode(self.config, data)
            if not link.ready:
                self._welcome(link, f, now)
            else:
                self._frame(f, now)
        except ProtocolError as exc:
            link.fail(exc.code, exc.message)

    def _welcome(self, link: Link, f: Frame, now: float) -> None:
        if f.t != "welcome":
            raise ProtocolError(CloseCode.PROTOCOL_VIOLATION, f"expected welcome, got {f.t!r}")
        if f.h.get("v") != VERSION:
            raise ProtocolError(CloseCode.UNSUPPORTED_VERSION, f"server speaks version {str(f.h.get('v'))[:20]}")
        h = f.h
        outcome, reason, lost = h["outcome"], h.get("reason"), h["lost"]
        if reason is not None and not isinstance(reason, str):
            raise ProtocolError(CloseCode.MALFORMED_FRAME, "welcome.reason must be a string")
        replaced = self.session is not None and h["session"] != self.session
        # Validate, then apply: a welcome refused with 4002 changes nothing (a replacement
        # session starts with nothing sent, so any recv position there is beyond sent).
        if replaced:
            _Endpoint(self.config, self.ep.mine, self.ep.theirs).check_acks(h["recv"])
        elif "no_dedupe" not in self.config.mutants:
            self.ep.check_acks(h["recv"])
        if replaced:
            # A different session: everything of the old one is gone.
            reason = reason or "unknown_session"
            for sid in sorted(self.streams):
                self.events.append(Reset(sid, reason))
            self._new_endpoint()
            self.ep.link = link
            outcome = "reset"
        elif "lost_ignored_by_client" not in self.config.mutants:  # looked up as JSON's str keys
            for sid, why in sorted(lost.items()):
                if sid in self.streams:
                    self.streams.discard(sid)
                    self.events.append(Reset(sid, why))
                st = self.ep.out.get(sid)
                if st is not None:
                    self.ep._drop_through(st, st.next_seq)
                if sid < self.next_sid:
                    self.ep.finish_stream(sid)
        self.session, self.token, self.epoch = h["session"], h["token"], h["epoch"]
        if "no_dedupe" not in self.config.mutants:
            self.ep.on_acks(h["recv"])
        self.ep.acked_sent = dict(self.ep.recv)
        self.ep.ack_due, self.ep.ack_pending = None, 0
        self.ep.retire_finished()
        link.ready = True
        link.last_ping = now
        self.ep.replay()
        self.events.append(Welcome(outcome, reason, dict(lost)))

    def _frame(self, f: Frame, now: float) -> None:
        ep = self.ep
        if f.t in ("ack", "ping", "pong"):
            ep.on_control(f, now)
            return
        if f.t in ("hello", "welcome"):
            raise ProtocolError(CloseCode.PROTOCOL_VIOLATION, f"unexpected {f.t!r} on an established connection")
        if f.t != "ctx" and f.sid >= self.next_sid:
            raise ProtocolError(CloseCode.PROTOCOL_VIOLATION, f"{f.t!r} for stream {f.sid}, which was never opened")
        if not ep.accept(f, now):
            return
        if f.t == "ctx":
            ep.context[f.h["key"]] = f.h["value"]
            self.events.append(ClientContextSet(f.h["key"], f.h["value"]))
            return
        if f.sid not in self.streams:
            if f.t == "data":
                ep.reassemble(f, keep=False)  # sequencing only: the stream is over here
            return  # stream already finished or reset locally: drop
        if f.t == "data":
            msg = ep.reassemble(f)
            if msg is not None:
                self.events.append(Chunk(f.sid, msg))
        elif f.t == "end":
            self.streams.discard(f.sid)
            self.events.append(Ended(f.sid))
            ep.finish_stream(f.sid)
        elif f.t == "error":
            self.streams.discard(f.sid)
            self.events.append(Failed(f.sid, f.h["reason"]))
            ep.finish_stream(f.sid)

    # -- application side -----------------------------------------------------------------
    def has_capacity(self) -> bool:
        return self.ep.has_capacity()

    def open(self, payload: str | bytes, now: float) -> int:
        """A new stream. A payload the server would refuse (not UTF-8 text, a frame above
        max_frame_size) raises ValueError and changes nothing."""
        sid = self.next_sid
        k = "t" if isinstance(payload, str) else "b"
        data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
        self.ep.push("open", sid, now, {"k": k}, data)
        self.next_sid += 1
        self.streams.add(sid)
        return sid

    def send(self, sid: int, msg: str | bytes, now: float) -> None:
        """Queue one message. One the server would refuse (above max_message_size: it would
        close 4005 and end the session; text that is not valid Unicode) raises ValueError."""
        if sid not in self.streams:
            raise ValueError(f"stream {sid} is not open")
        if not message_fits(msg, self.config.max_message_size):
            raise ValueError(f"message above max_message_size ({self.config.max_message_size} bytes)")
        self.ep.push_message(sid, msg, now)

    def cancel(self, sid: int, now: float) -> None:
        link = self.ep.link
        if "cancel_lost_on_resume" in self.config.mutants and (link is None or not link.ready):
            return
        if sid in self.streams:
            self.ep.push("cancel", sid, now)

    def set_context(self, key: str, value: Any, now: float) -> None:
        link = self.ep.link
        if "client_context_offline_dropped" in self.config.mutants and (link is None or not link.ready):
            self.ep.context[key] = value  # applied locally only, like an emit on a disconnected socket
            return
        self.ep.set_context(key, value, now)

    def next_deadline(self) -> float:
        return self.ep.link_deadline()

    def on_timer(self, now: float) -> None:
        self.ep.link_timer(now)
