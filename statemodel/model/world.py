"""The reference model of one state-machine run: sessions, streams, expected chunks, permissions.

The model is told what the machine *did* (opened a stream, sent a command, restarted the
server, let a session expire) and what it *observed* (a chunk, a terminal outcome, a status
event, the client's context). Observations are checked immediately against what the
protocol allows; ``check_quiescent`` checks the no-loss promise once the network has healed
and the system has settled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from statemodel.model.status import StatusChecker
from statemodel.model.violations import InvariantViolation, describe

_UNSET = object()
StreamKey = tuple[int, int]  # (session index, stream index), both in creation order
Chunk = str | bytes
Expand = Callable[[dict], list[Chunk]]

# A reset is allowed only when the protocol announces a loss it could not avoid: the server
# restarted after the session was created (epoch_changed / unknown_session), or the client
# was cut off long enough for expiry or replay eviction (session_expired / replay_evicted).


@dataclass
class StreamState:
    key: StreamKey
    expected: list[Chunk] = field(default_factory=list)
    terminal_requested: tuple | None = None  # ("end",) | ("error", reason) | ("cancelled",)
    context_keys: list[str] = field(default_factory=list)  # set_context commands sent on it
    requested_at: list[float] = field(default_factory=list)  # when each expected chunk was asked for
    terminal_at: float | None = None  # when terminal_requested was asked for
    delivered: int = 0
    outcome: tuple | None = None  # observed terminal: ("end",) | ("error", r) | ("reset", r) | ("cancelled",)
    session_generation: int = 0  # which of the session's incarnations opened it
    must_reset: str | None = None  # the resume that reported it lost (the client must reset it)

    @property
    def open_for_commands(self) -> bool:
        return self.terminal_requested is None and self.outcome is None

    @property
    def pending(self) -> int:
        return len(self.expected) - self.delivered


@dataclass
class SessionState:
    index: int
    generation: int = 0  # bumped each time the server replaced the client's session
    server_generation: int = 0  # which server incarnation created the current session
    expired: bool = False  # cut off long enough (this incarnation) for expiry or eviction
    context: dict[str, Any] = field(default_factory=dict)
    maybe_context: dict[str, Any] = field(default_factory=dict)  # set on a stream then cancelled
    # Set by the client after the server replaced its session, before the machine saw that
    # resume: it belongs to the new incarnation and survives the reset that is coming.
    pending_context: dict[str, Any] = field(default_factory=dict)
    # Which replacement each pending key was set in (an opaque tag, e.g. the session id; None:
    # the next one): two replacements may both be unreported, and the second drops the
    # first's keys.
    pending_owner: dict[str, Any] = field(default_factory=dict)
    streams: list[StreamKey] = field(default_factory=list)
    status: StatusChecker = field(default_factory=StatusChecker)


class LargestChunk:
    """The largest chunk asked for so far, in bytes (UTF-8 for text), with a cheap lower bound.

    Invariants read a bound every step; an exact figure would UTF-8-encode every multi-MiB
    text that might be the largest (1-2% of a sim run). Texts that may exceed the largest
    sized chunk wait in ``_unsized`` until someone needs the exact figure: ``floor`` (never
    above it, free) is enough to pass a bound, since a larger message never tightens one."""

    __slots__ = ("_sized", "_unsized", "_floor")

    def __init__(self) -> None:
        self._sized = 0  # exact size of the largest chunk sized so far
        self._unsized: list[str] = []  # non-ASCII texts that may be larger than that
        self._floor = 0  # a lower bound of the largest chunk (a text is at least len() bytes)

    def add(self, chunk: str | bytes) -> None:
        n = len(chunk)
        if isinstance(chunk, str) and not chunk.isascii():
            if n * 4 > self._floor:  # at most 4n bytes: else it cannot be the largest
                self._unsized.append(chunk)
        elif n > self._sized:
            self._sized = n
        if n > self._floor:
            self._floor = n

    @property
    def floor(self) -> int:
        """At most the exact figure (equal to it while no text awaits sizing)."""
        return self._floor

    @property
    def exact(self) -> int:
        for text in sorted(self._unsized, key=len, reverse=True):
            if len(text) * 4 <= self._sized:
                break  # this and every shorter text cannot be the largest
            self._sized = max(self._sized, len(text.encode()))
        self._unsized.clear()
        self._floor = max(self._floor, self._sized)
        return self._sized


class Model:
    def __init__(self, expand: Expand) -> None:
        self._expand = expand
        self.sessions: dict[int, SessionState] = {}
        self.streams: dict[StreamKey, StreamState] = {}
        self.restarts = 0
        self.largest = LargestChunk()

    @property
    def largest_chunk(self) -> int:
        """The largest chunk asked for so far, in bytes (texts in UTF-8)."""
        return self.largest.exact

    # ---- what the machine did -------------------------------------------------------------
    def new_session(self) -> int:
        index = len(self.sessions)
        self.sessions[index] = SessionState(index)
        return index

    def open_stream(self, session: int, command: dict, at: float = 0.0) -> StreamKey:
        s = self.sessions[session]
        key = (session, sum(1 for k in self.streams if k[0] == session))
        st = StreamState(key, session_generation=s.generation)
        self.streams[key] = st
        s.streams.append(key)
        self.command(key, command, at)
        return key

    def command(self, key: StreamKey, command: dict, at: float = 0.0) -> None:
        """A command the client sent on a stream (exactly once, in order) at time ``at``."""
        st = self.streams[key]
        assert st.open_for_commands, f"machine bug: command on closed stream {key}"
        op = command.get("op")
        if op == "batch":
            for inner in command["commands"]:
                self.command(key, inner, at)
            return
        if op in ("emit", "echo"):
            chunks = self._expand(command)
            st.expected.extend(chunks)
            st.requested_at.extend(at for _ in chunks)
            for c in chunks:
                self.largest.add(c)
        elif op == "end":
            st.terminal_requested, st.terminal_at = ("end",), at
        elif op == "fail":
            st.terminal_requested, st.terminal_at = ("error", command["reason"]), at
        elif op == "set_context":
            self.sessions[key[0]].context[command["key"]] = command["value"]
            st.context_keys.append(command["key"])
        else:  # pragma: no cover - the machine only sends the documented commands
            raise ValueError(f"unknown command {command!r}")

    def cancel(self, key: StreamKey, at: float = 0.0) -> None:
        """Cancelling stops the app wherever it is: commands still queued may never run."""
        st = self.streams[key]
        st.terminal_requested, st.terminal_at = ("cancelled",), at
        self._unsure_of_context(st)

    def _unsure_of_context(self, st: StreamState) -> None:
        """The stream's app stopped early: its set_context commands may or may not have run."""
        s = self.sessions[st.key[0]]
        for k in st.context_keys:
            if k in s.context:
                s.maybe_context[k] = s.context.pop(k)

    def client_context(self, session: int, key: str, value: Any, pending: bool = False, owner: Any = None) -> None:
        """The client set ``key = value`` in its session context (its own copy at once; the
        server's once the ``ctx`` item arrives, through any number of resumes). ``pending``:
        the client is already in a replacement session the machine has not seen reported
        (``owner`` names it, as ``reset_reported`` will)."""
        s = self.sessions[session]
        if pending:
            s.pending_context[key] = value
            s.pending_owner[key] = owner
        else:
            s.context[key] = value
            s.maybe_context.pop(key, None)

    def server_restarted(self) -> None:
        self.restarts += 1

    def session_expired(self, session: int) -> None:
        self.sessions[session].expired = True

    def undelivered_since(self, session: int, before: float) -> bool:
        """Some stream of the session still owes the client an item asked for at or before
        ``before``. The server sends an item only after it was asked for, so an item the
        server may have evicted by age (PROTOCOL.md §6) is one of these."""
        for key in self.sessions[session].streams:
            st = self.streams[key]
            if st.outcome is not None:
                continue
            if st.delivered < len(st.expected):
                if st.requested_at[st.delivered] <= before:
                    return True
            elif st.terminal_at is not None and st.terminal_at <= before:
                return True
        return False

    def may_reset(self, session: int) -> bool:
        s = self.sessions[session]
        return s.expired or s.server_generation < self.restarts

    # ---- what the machine observed --------------------------------------------------------
    def chunk(self, key: StreamKey, chunk: Chunk) -> None:
        st = self.streams[key]
        where = f"session {key[0]} stream {key[1]} chunk #{st.delivered}"
        if st.outcome is not None:
            raise InvariantViolation(
                "nothing after the end", where, f"no chunk after {st.outcome}", describe(chunk)
            )
        if st.delivered < len(st.expected) and st.expected[st.delivered] == chunk:
            st.delivered += 1
            return
        raise InvariantViolation(
            "ordered, gap-free, duplicate-free delivery", where, self._expected_here(st), self._diagnose(st, chunk)
        )

    def _expected_here(self, st: StreamState) -> str:
        if st.delivered < len(st.expected):
            return describe(st.expected[st.delivered])
        return f"no chunk (all {len(st.expected)} sent chunks already delivered)"

    @staticmethod
    def _diagnose(st: StreamState, chunk: Chunk) -> str:
        for i in range(st.delivered - 1, -1, -1):
            if st.expected[i] == chunk:
                return f"a duplicate of chunk #{i}: {describe(chunk)}"
        for j in range(st.delivered + 1, len(st.expected)):
            if st.expected[j] == chunk:
                return f"chunk #{j} (chunks #{st.delivered}..#{j - 1} skipped): {describe(chunk)}"
        return f"content never sent: {describe(chunk)}"

    def terminal(self, key: StreamKey, kind: str, reason: str | None = None) -> None:
        """The client reported the end of a stream: end, error(reason), reset(reason) or cancelled."""
        st = self.streams[key]
        s = self.sessions[key[0]]
        where = f"session {key[0]} stream {key[1]}"
        if st.outcome is not None:
            raise InvariantViolation("one outcome per stream", where, f"only {st.outcome}", f"also {kind}({reason})")
        if kind == "reset":
            # A stream of an earlier incarnation of the session died with it (the client may
            # report the session reset before the stream's consumer reads its reset).
            if st.session_generation == s.generation and not self.may_reset(key[0]):
                raise InvariantViolation(
                    "reset only when the protocol allows it",
                    where,
                    f"no reset (no server restart or expiry since the session began; {st.pending} chunks pending)",
                    f"reset({reason})",
                )
        elif kind == "cancelled":
            if st.terminal_requested != ("cancelled",):
                raise InvariantViolation("cancel only when asked", where, "no cancellation", "cancelled")
        else:
            outcome = (kind,) if reason is None else (kind, reason)
            if st.terminal_requested == ("cancelled",):
                pass  # the app may finish before the cancel reaches it
            elif st.terminal_requested != outcome:
                raise InvariantViolation(
                    "sequenced end and errors", where, f"{st.terminal_requested or 'the stream to continue'}", f"{outcome}"
                )
            if st.delivered != len(st.expected) and st.terminal_requested != ("cancelled",):
                raise InvariantViolation(
                    "no loss before the end",
                    where,
                    f"all {len(st.expected)} chunks before {kind}",
                    f"{kind} after {st.delivered} chunks",
                )
        st.outcome = (kind,) if reason is None else (kind, reason)
        if kind == "reset":
            self._unsure_of_context(st)

    def session_started(self, session: int, server_generation: int) -> None:
        """The client's first session exists; it was created by that server incarnation."""
        self.sessions[session].server_generation = server_generation

    def reset_reported(self, session: int, reason: str | None, replaced_by: int | None,
                       resume: str = "", lost: tuple[StreamKey, ...] = (), owner: Any = None) -> None:
        """The client reported resumed(reset). ``replaced_by``: the server generation of the
        fresh session that replaced the old one, or None if the session survived (``lost``:
        the streams that resume reported lost). ``resume`` names the resume in messages;
        ``owner`` the replacement (``client_context``'s tag). Every stream the resume ended
        must then end with a reset on the client."""
        s = self.sessions[session]
        where = f"session {session} {resume}".strip()
        if not self.may_reset(session):
            raise InvariantViolation(
                "reset only when the protocol allows it",
                where,
                "resumed(recovered): no server restart, expiry or long outage happened",
                f"resumed(reset, {reason})",
            )
        ended = [self.streams[k] for k in lost]
        if replaced_by is not None:
            ended = [self.streams[k] for k in s.streams if self.streams[k].session_generation == s.generation]
            s.generation += 1
            s.server_generation = replaced_by
            s.expired = False
            mine = [k for k, o in s.pending_owner.items() if o is None or owner is None or o == owner]
            s.context = {k: s.pending_context.pop(k) for k in mine}
            for k in mine:
                del s.pending_owner[k]
            s.maybe_context.clear()
        for st in ended:
            if st.outcome is None and st.must_reset is None:
                st.must_reset = f"{resume or 'a resume'} (reset, {reason})"

    def recovered_reported(self, session: int, lost: tuple[int, ...], resume: str = "",
                           epochs: tuple[str, str] | None = None, served_by: int | None = None) -> None:
        """The client reported resumed(recovered): nothing may have been lost in that resume,
        and the session's state must still be the server's: the welcome's epoch is the one
        the session began under (``epochs``: before, after), and the server incarnation that
        answered (``served_by``) is the one that created the session."""
        s = self.sessions[session]
        where = f"session {session} {resume}".strip()
        if lost:
            raise InvariantViolation(
                "recovered only when nothing was lost",
                where,
                f"resumed(reset, ...) since the welcome reset streams {list(lost)}",
                "resumed(recovered)",
            )
        if epochs is not None and epochs[0] != epochs[1]:
            raise InvariantViolation(
                "recovered only under the session's own server epoch",
                where,
                f"resumed(reset, epoch_changed): the welcome's epoch {epochs[1]!r} is not the "
                f"epoch {epochs[0]!r} the session began under (the server restarted)",
                "resumed(recovered)",
            )
        if served_by is not None and served_by != s.server_generation:
            raise InvariantViolation(
                "recovered only under the session's own server epoch",
                where,
                f"resumed(reset, ...): server incarnation {s.server_generation} created the session, "
                f"incarnation {served_by} (after {self.restarts} restart(s)) cannot hold its state",
                "resumed(recovered)",
            )

    def lost_not_reset(self, session: int, lost: dict[int, StreamKey], resume: str) -> None:
        """The client's stream ids (``lost``: id -> stream) that the resume reported lost and
        the client still treats as open, right after it processed that welcome."""
        if lost:
            sid, key = min(lost.items())
            raise InvariantViolation(
                "every stream a resume reports lost is reset on the client",
                f"session {session} {resume}".strip(),
                f"stream {key[1]} (id {sid}) reset when the welcome named it lost",
                f"the client still treats stream ids {sorted(lost)} as open",
            )

    def session_replaced_silently(self, session: int, reason: str | None, resume: str = "") -> None:
        raise InvariantViolation(
            "reset only when the protocol allows it",
            f"session {session} {resume}".strip(),
            "resumed(reset): the server replaced the session, losing its state",
            f"resumed(recovered) with a new session id ({reason})",
        )

    def status(self, session: int, event: tuple) -> None:
        self.sessions[session].status.feed(event, f"session {session}")

    # ---- invariants read after every step ----------------------------------------------------
    def check_context(self, session: int, observed: dict) -> None:
        """The client's view of the session context never holds a value nobody set."""
        s = self.sessions[session]
        for k, v in observed.items():
            if s.pending_context.get(k, _UNSET) == v:
                continue
            if s.context.get(k, s.maybe_context.get(k, _UNSET)) != v:
                raise InvariantViolation(
                    "session context preserved",
                    f"session {session} key {k!r}",
                    describe(s.context.get(k, s.maybe_context.get(k, "<unset>"))),
                    describe(v),
                )

    def context_settled(self, session: int, observed: dict) -> bool:
        """Every definite key present with its value; cancelled-maybe keys absent or right."""
        s = self.sessions[session]
        if any(observed.get(k, _UNSET) != v for k, v in s.context.items()):
            return False
        return all(s.context.get(k, s.maybe_context.get(k, _UNSET)) == v for k, v in observed.items())

    def check_quiescent(self, observed_context: dict[int, dict], server_context: dict[int, dict] | None = None) -> None:
        """After heal and settle: everything sent was delivered, or a permitted reset said why not.

        ``observed_context`` is each client's view of its session context; ``server_context``
        (where the target can show it) the server's, which later requests of the session see."""
        for key, st in self.streams.items():
            where = f"session {key[0]} stream {key[1]}"
            if st.must_reset is not None and st.outcome is None:
                raise InvariantViolation(
                    "every stream a resume reports lost is reset on the client", where,
                    f"reset, since {st.must_reset} ended it", "the stream is still open",
                )
            if st.outcome is not None and st.outcome[0] in ("reset", "cancelled"):
                continue
            if st.terminal_requested == ("cancelled",):
                if st.outcome is None:
                    raise InvariantViolation(
                        "cancellation survives resume", where,
                        "the stream to end (cancelled, or finished first)", "the stream is still open",
                    )
                continue
            if st.delivered != len(st.expected):
                raise InvariantViolation(
                    "no loss at quiescence",
                    where,
                    f"{len(st.expected)} chunks delivered",
                    f"{st.delivered} delivered; next missing: {describe(st.expected[st.delivered])}",
                )
            if st.terminal_requested is not None and st.outcome is None:
                raise InvariantViolation(
                    "no loss at quiescence", where, f"outcome {st.terminal_requested}", "the stream is still open"
                )
        for side, views in (("client", observed_context), ("server", server_context or {})):
            for index, s in self.sessions.items():
                if index in views and not self.context_settled(index, views[index]):
                    raise InvariantViolation(
                        "session context preserved",
                        f"session {index} ({side} side)",
                        describe(s.context),
                        describe(views[index]),
                    )

    # ---- for the timeline ---------------------------------------------------------------------
    def snapshot(self) -> dict:
        return {
            "restarts": self.restarts,
            "streams": {
                f"{k[0]}.{k[1]}": {
                    "expected": len(st.expected),
                    "delivered": st.delivered,
                    "terminal_requested": st.terminal_requested,
                    "outcome": st.outcome,
                }
                for k, st in self.streams.items()
            },
        }
