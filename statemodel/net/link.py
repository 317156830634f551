"""The fault engine shared by the sim and tcp backends: links made of two pipes.

A *pipe* is one direction of a link. Writers push bytes in; the pipe applies the
direction's faults (frame-aware filtering, hold for clog/partition, latency, jitter,
bandwidth, slicing) and queues ``[deliver_at, bytes]`` entries that the reader takes
once ``trio.current_time()`` reaches ``deliver_at``. The sim hands pipe ends to the
endpoints directly; the tcp proxy pumps real sockets into and out of the same pipes,
so one implementation gives both backends the same fault semantics.

Per write the cost is a few Python operations per WebSocket frame; payloads are never
copied except when sliced, and no task is spawned per write. A reader waiting for bytes that
are still in flight sleeps until their delivery time: a write does not wake it just to find
them not yet due (it moves the reader's deadline instead), and a read that has to wait is not
also a separate schedule point (one task step per delivery, as with a real socket).
"""

from __future__ import annotations

import math
import random
from collections import deque

import trio

from statemodel.timers import Alarm, park_until

from . import faults as F
from .trace import Trace
from .wsframes import HEADER, HTTP, OP_CLOSE, OP_PONG, FrameScanner

# Slice cuts the first SLICE_PIECES pieces of a write at max_bytes and delivers the rest as
# one more piece: boundaries inside headers are where parsers break, and one-byte reads of a
# whole 2 MiB message (millions of trio-websocket reader wakeups) cost minutes per example.
SLICE_PIECES = 64
EOF = "EOF"  # queue marker: reader gets b"" (FIN)
ABORT = "ABORT"  # queue marker: reader gets BrokenResourceError (RST after a truncation)


class Pipe:
    """One direction of a link (``c2s`` or ``s2c``)."""

    def __init__(self, link: "Link", direction: str, rng: random.Random, buffer_limit: int | None) -> None:
        self.link = link
        self.direction = direction
        self.rng = rng
        self.buffer_limit = buffer_limit
        self.trace = link.trace
        self.queue: deque[list] = deque()
        self.held: deque = deque()
        self._reader = trio.lowlevel.ParkingLot()  # the task in read(), waiting for bytes
        self._read_scope: Alarm | None = None  # its deadline: the head's delivery time
        self._writers = trio.lowlevel.ParkingLot()  # tasks in wait_writable()
        self.buffered = 0
        self.scanner = FrameScanner()
        self.last_at = 0.0
        self.bw_free = 0.0
        # end-state flags
        self.eof_written = False  # writer sent FIN (or a CleanClose forced one)
        self.broken = False  # writes fail with BrokenResourceError
        self.aborted = False  # reads fail with BrokenResourceError
        self.reader_closed = False  # reading end closed locally
        self.reset_degrade()
        self.dead = False  # HalfOpen: everything vanishes
        self.truncate = False  # TruncateMidFrame armed
        self.handshake_drop = False  # DropDuringHandshake armed (s2c only)

    def reset_degrade(self) -> None:
        self.latency = 0.0
        self.jitter = 0.0
        self.bps: float | None = None
        self.slice: int | None = None
        self.clogged = False
        self.partitioned = False
        self.split = False
        self.drop_close = False
        self.delay_close = 0.0
        self.swallow_pongs = False
        self.loss: F.PacketLoss | None = None
        self.loss_count = 0

    # -- writing ---------------------------------------------------------------------

    def _note(self, kind: str, size: int = 0, detail: str = "", t: float | None = None) -> None:
        tr = self.trace
        if tr.record_bytes:
            tr.add(trio.current_time() if t is None else t, self.link.id, self.direction, kind, size, detail)

    def write(self, data: bytes) -> None:
        """Accept one write; never blocks (see :meth:`wait_writable`)."""
        now = trio.current_time()
        tr = self.trace
        rec = tr.record_bytes
        if rec:
            tr.add(now, self.link.id, self.direction, "send", len(data), "")
        if tr.tap is not None:
            tr.tap(now, self.link.id, self.direction, "send", data)
        segs = self.scanner.feed(data)
        if rec:
            for op, length in self.scanner.frames:
                tr.add(now, self.link.id, self.direction, "frame", length, f"op={op}")
        if self.dead:
            if rec:
                tr.add(now, self.link.id, self.direction, "drop", len(data), "half-open")
            return
        if self.handshake_drop:
            self.handshake_drop = False
            self.link.abort("handshake dropped")
            return
        if not (self.truncate or self.split or self.drop_close or self.delay_close or self.swallow_pongs):
            self._schedule(data, 0.0, now)
            return
        pieces: list[list] = []  # [start, end, extra_delay]
        truncate_at = None
        for s, e, part, op, first in segs:
            if part != HTTP:
                if self.truncate:
                    cut = s + (e - s) // 2
                    if cut == s and first:
                        cut = e
                    truncate_at = cut
                    if cut > s:
                        pieces.append([s, cut, 0.0])
                    break
                if (op == OP_CLOSE and self.drop_close) or (op == OP_PONG and self.swallow_pongs):
                    if rec:
                        tr.add(now, self.link.id, self.direction, "drop", e - s, f"op={op}")
                    continue
            extra = self.delay_close if (op == OP_CLOSE and part != HTTP) else 0.0
            if self.split:
                if part == HEADER and first and e - s >= 2:
                    pieces.append([s, s + 1, extra])
                    s += 1
                pieces.append([s, e, extra])
            elif pieces and pieces[-1][1] == s and pieces[-1][2] == extra:
                pieces[-1][1] = e
            else:
                pieces.append([s, e, extra])
        view = memoryview(data)  # a piece short of the whole write (one read may hold a data frame and a close)
        for s, e, extra in pieces:
            self._schedule(data if (s == 0 and e == len(data)) else view[s:e], extra, now)
        if truncate_at is not None:
            self.truncate = False
            if rec:
                tr.add(now, self.link.id, self.direction, "fault", len(data) - truncate_at, "truncated")
            self.link.abort("truncated mid-frame", after=self)

    def _schedule(self, data, extra: float, now: float) -> None:
        n = len(data)
        if n == 0:
            return
        self.buffered += n
        if self.clogged or self.partitioned:
            self.held.append(data)
            self._note("hold", n, "", now)
            return
        t = now
        if self.bps:
            t = max(now, self.bw_free) + n / self.bps
            self.bw_free = t
        t += self.latency + extra
        if self.loss is not None:
            self.loss_count += 1
            lost = (self.loss_count % self.loss.every == 0) if self.loss.every else self.rng.random() < self.loss.probability
            if lost:
                t += self.loss.rto
                self._note("drop", 0, "retransmit", now)
        if self.jitter:
            t += self.rng.uniform(0.0, self.jitter)
        if t < self.last_at:
            t = self.last_at
        self.last_at = t
        q = self.queue
        was_empty = not q
        rec = self.trace.record_bytes
        if self.slice and n > self.slice:
            step = self.slice
            view = data if isinstance(data, memoryview) else memoryview(data)
            sliced = min(n, step * SLICE_PIECES)
            bounds = list(range(0, sliced, step)) + ([sliced] if sliced < n else [])
            for i, j in zip(bounds, bounds[1:] + [n]):
                q.append([t, view[i:j]])
                if rec:
                    self.trace.add(t, self.link.id, self.direction, "deliver", j - i, "")
        else:
            q.append([t, data])
            if rec:
                self.trace.add(t, self.link.id, self.direction, "deliver", n, "")
        if was_empty:  # otherwise the reader already waits for an earlier entry
            self._wake_reader()

    def _push_marker(self, marker: str) -> None:
        if self.clogged or self.partitioned:
            self.held.append(marker)
        else:
            t = max(trio.current_time() + self.latency, self.last_at)
            self.last_at = t
            self.queue.append([t, marker])
        self._wake()

    def write_eof(self) -> None:
        """FIN from the writer: delivered after everything already written."""
        if self.eof_written:
            return
        self.eof_written = True
        if self.dead or self.aborted:
            return
        self._note("eof")
        self._push_marker(EOF)

    def writable_error(self) -> type[Exception] | None:
        if self.aborted or self.broken or self.reader_closed:
            return trio.BrokenResourceError
        return None

    async def wait_writable(self) -> None:
        """Backpressure: wait while more than ``buffer_limit`` bytes are undelivered."""
        limit = self.buffer_limit
        while limit is not None and self.buffered > limit and not (self.aborted or self.broken or self.reader_closed):
            await self._writers.park()

    def _wake(self) -> None:
        """The pipe's state changed: waiting writers re-check their room, the reader its queue."""
        if self._writers:
            self._writers.unpark_all()
        self._wake_reader()

    def _wake_reader(self) -> None:
        """Wake the reader if it has something to see now; else make it wake at the head's
        delivery time (moving a deadline costs no task switch, a wakeup does)."""
        scope = self._read_scope
        if scope is None:
            return
        q = self.queue
        if q and not (self.aborted or self.reader_closed):
            at = q[0][0]
            if at > trio.current_time():
                if at < scope.deadline:
                    scope.deadline = at
                return
        self._reader.unpark_all()

    # -- reading ---------------------------------------------------------------------

    async def read(self, max_bytes: int | None = None) -> bytes:
        """The next delivered bytes (b"" at EOF). Like a socket read, one schedule point: a
        read that waits has had it; one served at once yields once before returning."""
        await trio.lowlevel.checkpoint_if_cancelled()
        waited = False
        while True:
            if self.reader_closed:
                raise trio.ClosedResourceError("this end of the stream was closed")
            if self.aborted:
                raise trio.BrokenResourceError(f"link {self.link.id} aborted ({self.link.reason})")
            q = self.queue
            if q:
                entry = q[0]
                at, item = entry
                if at <= trio.current_time():
                    if item is ABORT:
                        self.aborted = True
                        self.queue.clear()
                        continue
                    if item is EOF:
                        data = b""
                    else:
                        n = len(item)
                        if max_bytes is None or n <= max_bytes:
                            q.popleft()
                            data = item if isinstance(item, bytes) else bytes(item)
                        else:
                            view = item if isinstance(item, memoryview) else memoryview(item)
                            entry[1] = view[max_bytes:]  # a view: small reads of a big write stay O(n)
                            data = bytes(view[:max_bytes])
                            n = max_bytes
                        self.buffered -= n
                        if self._writers:
                            self._writers.unpark_all()
                    if data and self.trace.tap is not None:
                        self.trace.tap(trio.current_time(), self.link.id, self.direction, "recv", data)
                    if not waited:
                        await trio.lowlevel.cancel_shielded_checkpoint()
                    return data
            else:
                at = math.inf
            # A deadline that ends the wait without a cancellation (statemodel.timers): most
            # reads end there, at the head's delivery time.
            self._read_scope = Alarm(at)
            try:
                await park_until(self._reader, self._read_scope)
            finally:
                self._read_scope = None
            waited = True

    def close_reader(self) -> None:
        self.reader_closed = True
        self.queue.clear()
        self.held.clear()
        self.buffered = 0
        self._wake()

    # -- faults ----------------------------------------------------------------------

    def kill(self) -> None:
        """Abort now: in-flight bytes are lost, both reads and writes fail."""
        self.aborted = True
        self.broken = True
        self.queue.clear()
        self.held.clear()
        self.buffered = 0
        self._wake()

    def apply(self, fault: F.Fault) -> None:
        if isinstance(fault, F.Latency):
            self.latency, self.jitter = fault.seconds, fault.jitter
        elif isinstance(fault, F.Bandwidth):
            self.bps = float(fault.bytes_per_second)
        elif isinstance(fault, F.Slice):
            self.slice = fault.max_bytes
        elif isinstance(fault, F.Clog):
            self.clogged = True
        elif isinstance(fault, F.Partition):
            self.partitioned = True
        elif isinstance(fault, F.SplitAtFrameBoundary):
            self.split = True
        elif isinstance(fault, F.DropCloseFrame):
            self.drop_close = True
        elif isinstance(fault, F.DelayCloseFrame):
            self.delay_close = fault.seconds
        elif isinstance(fault, F.SwallowPongs):
            self.swallow_pongs = True
        elif isinstance(fault, F.PacketLoss):
            self.loss = fault
        elif isinstance(fault, F.TruncateMidFrame):
            self.truncate = True
        elif isinstance(fault, F.HalfOpen):
            self.dead = True
            self.queue.clear()
            self.held.clear()
            self.buffered = 0
            self._wake()
        else:  # pragma: no cover - Link.apply routes the rest
            raise ValueError(f"{fault!r} is not a per-direction fault")

    def heal(self) -> None:
        now = trio.current_time()
        if self.bps:
            # The bottleneck is gone, so its queue drains now: bytes written under a bandwidth
            # cap keep only their propagation delay. Without this, 1.5 MB queued at 20 KB/s
            # still trickled for 75 s after the heal (found by StreamMachine as 'no loss at
            # quiescence' once the recovery bound ran out).
            cap = now + self.latency
            for entry in self.queue:
                entry[0] = min(entry[0], cap)
            self.last_at = min(self.last_at, cap)
            self.bw_free = now
        self.reset_degrade()
        while self.held:
            item = self.held.popleft()
            t = max(now, self.last_at)
            self.last_at = t
            self.queue.append([t, item])
            if not isinstance(item, str):
                self._note("release", len(item), "", now)
        self._wake()


class Link:
    """One connection: client end <-> server end, as two pipes."""

    def __init__(self, network: "LinkNetwork", link_id: int) -> None:
        self.network = network
        self.id = link_id
        self.trace = network.trace
        self.reason = ""
        seed = network.seed
        limit = network.buffer_limit
        self.c2s = Pipe(self, "c2s", random.Random(f"{seed}/{link_id}/c2s"), limit)
        self.s2c = Pipe(self, "s2c", random.Random(f"{seed}/{link_id}/s2c"), limit)
        self.closed_ends = 0
        self.done = False

    def pipes(self, direction: str) -> list[Pipe]:
        return [self.c2s if d == "c2s" else self.s2c for d in F.expand(direction)]

    def abort(self, reason: str, after: Pipe | None = None) -> None:
        """RST. With ``after``, that pipe's reader first gets what was queued."""
        if self.done and not after:
            return
        self.reason = reason
        self.trace.add(trio.current_time(), self.id, "both", "abort", 0, reason)
        for pipe in (self.c2s, self.s2c):
            if pipe is after:
                pipe.broken = True
                pipe.held.clear()
                pipe.queue.append([pipe.last_at, ABORT])
                pipe._wake()
            else:
                pipe.kill()
        self.done = True

    def apply(self, fault: F.Fault) -> None:
        if isinstance(fault, F.Abort):
            self.abort("Abort()")
        elif isinstance(fault, F.CleanClose):
            self.reason = "CleanClose()"
            for pipe in (self.c2s, self.s2c):
                if not pipe.eof_written:
                    pipe.write_eof()
                pipe.broken = True
                pipe._wake()
            self.done = True
        elif isinstance(fault, F.Heal):
            self.c2s.heal()
            self.s2c.heal()
        elif isinstance(fault, F.DropDuringHandshake):
            self.s2c.handshake_drop = True
        else:
            for pipe in self.pipes(getattr(fault, "direction", "both")):
                pipe.apply(fault)

    def end_closed(self) -> None:
        self.closed_ends += 1
        if self.closed_ends >= 2:
            self.done = True


class LinkNetwork:
    """What every in-process backend shares: links, ``apply``/``heal``, the trace.

    Faults applied with ``link=None`` are network-wide: they hit every live link and,
    for degrade and frame-aware faults, every link created later too, until ``heal()``.
    ``DropDuringHandshake`` arms the next link; ``Clog`` applies to live links only.
    Persistent faults are kept by id (``faults``) so the control API can list and
    remove them; ``disable()`` lifts them all without forgetting them.
    """

    def __init__(self, seed: int = 0, *, record_bytes: bool = True, buffer_limit: int | None = 1 << 20) -> None:
        self.seed = seed
        self.buffer_limit = buffer_limit
        self.trace = Trace(record_bytes=record_bytes)
        self._links: dict[int, Link] = {}
        self._next_id = 0
        self._faults: dict[int, tuple[F.Fault, int | None]] = {}
        self._next_fault = 1
        self._handshake_drops = 0
        self._healed = trio.Event()
        self.enabled = True

    @property
    def links(self) -> list[int]:
        """Ids of live links (not aborted or closed at both ends), in creation order."""
        return [i for i, link in self._links.items() if not link.done]

    def link(self, link_id: int) -> Link:
        return self._links[link_id]

    @property
    def faults(self) -> dict[int, tuple[F.Fault, int | None]]:
        """Persistent faults in force: id -> (fault, link or None for network-wide)."""
        return dict(self._faults)

    def _new_link(self) -> Link:
        self._forget_done_links()
        link = Link(self, self._next_id)
        self._next_id += 1
        self._links[link.id] = link
        if self.enabled:
            for fault, target in self._faults.values():
                if target is None and not isinstance(fault, F.Clog):
                    link.apply(fault)
            if self._handshake_drops:
                self._handshake_drops -= 1
                link.apply(F.DropDuringHandshake())
        return link

    def _forget_done_links(self) -> None:
        for i in [i for i, link in self._links.items() if link.done]:
            del self._links[i]
        for fid in [fid for fid, (_, target) in self._faults.items() if target is not None and target not in self._links]:
            del self._faults[fid]

    def partitioned(self) -> bool:
        return self.enabled and any(
            isinstance(f, F.Partition) and target is None for f, target in self._faults.values()
        )

    async def wait_connectable(self) -> None:
        """New connections stall while a network-wide partition is in force (a SYN
        cannot cross it); callers bound this with a timeout like a real connect."""
        while self.partitioned():
            await self._healed.wait()

    def _notify_healed(self) -> None:
        self._healed.set()
        self._healed = trio.Event()

    def apply(self, fault: F.Fault, link: int | None = None) -> int:
        """Apply ``fault`` to ``link`` (None = every live link / network-wide). Returns
        an id (persistent faults can be removed by it); ``Heal`` returns 0."""
        if not isinstance(fault, F.Fault):
            raise TypeError(f"apply() needs a Fault, got {fault!r}")
        if isinstance(fault, F.Heal):
            self.heal(link)
            return 0
        if isinstance(fault, F.DropDuringHandshake):
            link = None  # always arms the *next* link, whichever link was named
        if link is not None and (link not in self._links or self._links[link].done):
            raise ValueError(f"no live link {link}; live links: {self.links}")
        self.trace.add(trio.current_time(), link, getattr(fault, "direction", "both"), "fault", 0, repr(fault))
        fid = self._next_fault
        self._next_fault += 1
        if fault.kind in ("degrade", "frame"):
            self._faults[fid] = (fault, link)
        if link is not None:
            if self.enabled:
                self._links[link].apply(fault)
        elif isinstance(fault, F.DropDuringHandshake):
            self._handshake_drops += 1
        elif self.enabled:
            for i in self.links:
                self._links[i].apply(fault)
        self._forget_done_links()
        return fid

    def heal(self, link: int | None = None) -> None:
        """Lift persistent faults: all of them (``None``), or those of one link. A network-wide
        heal also disarms pending ``DropDuringHandshake`` drops: after it the network is
        healthy, and a recovery bound measured from it must not pay for drops armed earlier
        (found by StreamMachine: five armed drops outlived the heal, 5 x 2 s handshake
        timeouts > the 10 s recovery bound, a false failure)."""
        self.trace.add(trio.current_time(), link, "both", "fault", 0, "Heal()")
        if link is None:
            self._handshake_drops = 0
        for fid in [fid for fid, (_, t) in self._faults.items() if link is None or t == link]:
            del self._faults[fid]
        targets = self.links if link is None else [link] if link in self._links else []
        for i in targets:
            self._links[i].apply(F.Heal())
        self._notify_healed()

    def _reapply(self, targets: list[int]) -> None:
        for i in targets:
            self._links[i].apply(F.Heal())
            if self.enabled:
                for fault, target in self._faults.values():
                    if target is None or target == i:
                        self._links[i].apply(fault)
        self._notify_healed()

    def remove(self, fault_id: int) -> F.Fault:
        """Lift one persistent fault (the others on the same links stay in force)."""
        if fault_id not in self._faults:
            raise KeyError(f"no fault with id {fault_id}; faults in force: {sorted(self._faults)}")
        fault, target = self._faults.pop(fault_id)
        self.trace.add(trio.current_time(), target, "both", "fault", 0, f"remove {fault!r}")
        self._reapply(self.links if target is None else [target] if target in self.links else [])
        return fault

    def disable(self) -> None:
        """Lift every fault without forgetting them (``enable()`` puts them back)."""
        self.enabled = False
        self.trace.add(trio.current_time(), None, "both", "fault", 0, "disable")
        self._reapply(self.links)

    def enable(self) -> None:
        self.enabled = True
        self.trace.add(trio.current_time(), None, "both", "fault", 0, "enable")
        self._reapply(self.links)

    def reset(self) -> None:
        """Forget every fault and armed drop; heal all links."""
        self._handshake_drops = 0
        self.heal(None)
        self.enabled = True
