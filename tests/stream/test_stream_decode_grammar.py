"""A small grammar of frame headers (valid shapes with hostile values: lone surrogates, odd
digits, huge and non-integer numbers, deep nesting, unknown fields) fed to the decoder and
to both sans-IO cores. Whatever arrives, decode raises only ProtocolError, the cores never
raise, every close they decide has a documented code and a sendable reason, and nothing
they queue is a frame their peer would refuse. Issue 12, observation 6."""

from __future__ import annotations

import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statemodel.stream import protocol as P
from statemodel.stream.config import Config
from statemodel.stream.errors import MAX_CLOSE_REASON, CloseCode, ProtocolError
from statemodel.stream.frames import TYPES, Frame, decode, encode

ODD_TEXT = st.sampled_from(["\ud800", "\udfff", "x\ud83dy", "²", "٣", "01", "-1", "1e3", " 1", "", "\x00",
                            "a" * 300, "é", "😀"])
TEXT = st.one_of(st.text(max_size=8), ODD_TEXT)
INTS = st.one_of(st.integers(-2, 40), st.sampled_from([2**53 - 1, 2**53, 2**63, 10**30, -(2**63)]))
SCALARS = st.one_of(st.none(), st.booleans(), INTS, st.floats(allow_nan=False, allow_infinity=False), TEXT)
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.dictionaries(TEXT, inner, max_size=3)), max_leaves=12)
SEQ_MAP = st.one_of(st.dictionaries(st.one_of(st.sampled_from(["0", "1", "2", "3"]), ODD_TEXT),
                                    st.one_of(INTS, JSON), max_size=4), JSON)
FIELDS = {
    "s": st.one_of(st.integers(0, 4), JSON), "q": st.one_of(st.integers(0, 6), JSON),
    "fin": st.one_of(st.booleans(), JSON), "k": st.one_of(st.sampled_from(["t", "b"]), JSON),
    "a": SEQ_MAP, "recv": SEQ_MAP, "lost": SEQ_MAP, "reason": st.one_of(TEXT, JSON),
    "key": st.one_of(TEXT, JSON), "value": JSON, "v": st.one_of(st.just(1), JSON),
    "outcome": st.one_of(st.sampled_from(["new", "recovered", "reset"]), JSON),
    "session": st.one_of(TEXT, JSON), "token": st.one_of(TEXT, JSON), "epoch": st.one_of(TEXT, JSON),
    "resume": st.one_of(st.fixed_dictionaries({"session": TEXT, "token": TEXT, "epoch": TEXT}, optional={"recv": SEQ_MAP}), JSON),
    "zz_unknown": JSON,
}


@st.composite
def headers(draw) -> bytes:
    h = {"t": draw(st.one_of(st.sampled_from(sorted(TYPES)), JSON))}
    for name in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=6, unique=True)):
        h[name] = draw(FIELDS[name])
    text = json.dumps(h, ensure_ascii=draw(st.booleans()))
    raw = text.encode("utf-8", "surrogatepass")  # may be invalid UTF-8 on purpose
    payload = draw(st.sampled_from([b"", b"x", "é".encode(), b"\xff"]))
    return len(raw).to_bytes(4, "big") + raw + payload


NESTED = st.integers(1, 3000).map(lambda n: ('{"t":"ctx","s":0,"q":1,"key":"k","value":' + "[" * n + "]" * n + "}").encode())
RAW = st.one_of(headers(), NESTED.map(lambda b: len(b).to_bytes(4, "big") + b), st.binary(max_size=40))


def check_close(link: P.Link) -> None:
    if link.close is not None:
        code, reason = link.close
        assert code in set(CloseCode), link.close
        assert isinstance(reason, str)


def check_outbox(frames: list[bytes], cfg: Config) -> None:
    """Everything we queued, the peer's decoder accepts (we never send what we refuse)."""
    for data in frames:
        decode(data, max_frame_size=cfg.max_frame_size, max_header_size=cfg.max_header_size)


CFG = Config()


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RAW)
def test_decode_raises_only_protocol_errors(data):
    try:
        f = decode(data)
    except ProtocolError as exc:
        assert exc.code in (CloseCode.MALFORMED_FRAME, CloseCode.FRAME_TOO_LARGE)
        assert len(exc.message) < 400  # a message a person reads, never the whole input echoed
        return
    # what decodes, encodes back to a frame that decodes the same (the canonical form)
    again = decode(encode(Frame(f.t, f.h, bytes(f.payload))))
    assert again.t == f.t and bytes(again.payload) == bytes(f.payload)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(RAW, min_size=1, max_size=4), st.booleans())
def test_the_server_core_never_raises_on_any_frames(frames, hello_first):
    proto = P.ServerProtocol(CFG, random.Random(0))
    conn = proto.connect(0.0)
    if hello_first:
        conn.receive(encode(Frame("hello", {"v": 1})), 0.0)
        conn.receive(encode(Frame("open", {"s": 1, "q": 1, "k": "t"}, b"{}")), 0.0)
        proto.emit(conn.session.id, 1, "héllo", 0.0)
    for i, data in enumerate(frames):
        conn.receive(data, 1.0 + i)
        conn.on_timer(1.0 + i)
        check_close(conn)
    check_outbox(conn.take(), CFG)
    proto.disconnected(conn, 10.0)
    proto.on_timer(1000.0)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(RAW, min_size=1, max_size=4), st.booleans())
def test_the_client_core_never_raises_on_any_frames(frames, welcome_first):
    client = P.ClientProtocol(CFG)
    client.open("req", 0.0)
    link = client.connect(0.0)
    if welcome_first:
        client.receive(encode(Frame("welcome", {"v": 1, "session": "s", "token": "t", "epoch": "e",
                                                "outcome": "new", "recv": {}, "lost": {}})), 0.0)
    for i, data in enumerate(frames):
        client.receive(data, 1.0 + i)
        client.on_timer(1.0 + i)
        check_close(link)
    check_outbox(link.take(), CFG)
    client.disconnected(10.0)


DEEP: list = [0]
for _ in range(40):
    DEEP = [DEEP]
UNSENDABLE = st.sampled_from([{1, 2}, float("nan"), float("inf"), b"bytes", "x" * 70_000, object(), DEEP])


@given(st.one_of(JSON, UNSENDABLE, st.lists(UNSENDABLE, max_size=2)), st.one_of(TEXT, st.integers()))
@settings(deadline=None)
def test_whatever_an_app_puts_in_the_context_is_sent_or_refused_whole(value, key):
    """set_context either queues a frame the peer accepts, or raises and changes nothing."""
    proto = P.ServerProtocol(CFG, random.Random(0))
    conn = proto.connect(0.0)
    conn.receive(encode(Frame("hello", {"v": 1})), 0.0)
    sid = conn.session.id
    before = dict(proto.context(sid))
    try:
        proto.set_context(sid, key, value, 0.0)
    except (TypeError, ValueError):
        assert proto.context(sid) == before
    # the next item on stream 0 has the next seq either way, so the peer sees no gap
    proto.set_context(sid, "after", 1, 0.0)
    frames = [decode(d) for d in conn.take()]
    ctx = [f for f in frames if f.t == "ctx"]
    assert [f.seq for f in ctx] == list(range(1, len(ctx) + 1))
    for f in ctx:
        assert f.h["key"] in (key, "after")
    assert MAX_CLOSE_REASON == 123
