"""Behaviour the zero-copy receive path must keep: decoding without copying and joining
fragments once must hand the app exactly the bytes / text that were sent, as real bytes
and str objects, whatever the fragment size."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from statemodel.stream import protocol as P
from statemodel.stream.config import Config
from statemodel.stream.errors import CloseCode
from statemodel.stream.frames import Frame, decode, encode


def test_decode_of_bytes_and_of_bytearray_agree():
    data = encode(Frame("data", {"s": 1, "q": 2, "fin": False, "k": "b"}, b"\x00payload\xff" * 50))
    a, b = decode(data), decode(bytearray(data))
    assert (a.t, a.h, bytes(a.payload)) == (b.t, b.h, bytes(b.payload)) == (
        "data", {"s": 1, "q": 2, "fin": False, "k": "b"}, b"\x00payload\xff" * 50)


def test_decoded_payload_does_not_follow_a_mutated_bytearray():
    buf = bytearray(encode(Frame("data", {"s": 1, "q": 1, "fin": True, "k": "b"}, b"abc")))
    f = decode(buf)
    buf[-3:] = b"xyz"
    assert bytes(f.payload) == b"abc"


def test_frames_without_payload_decode_to_empty_bytes():
    for frame in (Frame("ack", {"a": {"1": 3}}), Frame("end", {"s": 1, "q": 4}),
                  Frame("data", {"s": 1, "q": 1, "fin": True, "k": "b"}, b"")):
        f = decode(encode(frame))
        assert f.payload == b"" and not f.payload


def _pump(clink, conn, client, server, now=0.0):
    cevents, sevents = [], []
    for _ in range(10_000):
        moved = False
        for data in clink.take():
            moved = True
            conn.receive(data, now)
        for data in conn.take():
            moved = True
            client.receive(data, now)
        cevents += client.drain_events()
        sevents += server.drain_events()
        if not moved:
            return cevents, sevents
    raise AssertionError("pump did not settle")


messages = st.one_of(st.binary(max_size=600), st.text(max_size=200))


@settings(max_examples=60, deadline=None)
@given(size=st.sampled_from([1, 3, 4, 7, 64, 256 * 1024]), opening=messages, msgs=st.lists(messages, max_size=4))
def test_messages_reassemble_exactly_both_ways_at_every_fragment_size(size, opening, msgs):
    cfg = Config(fragment_size=size)
    server = P.ServerProtocol(cfg, random.Random(0))
    client = P.ClientProtocol(cfg)
    clink, conn = client.connect(0.0), server.connect(0.0)
    _pump(clink, conn, client, server)
    sid = client.open(opening, 0.0)
    for m in msgs:
        client.send(sid, m, 0.0)
    _, sevents = _pump(clink, conn, client, server)
    opened = [e for e in sevents if isinstance(e, P.Opened)]
    assert [(type(e.payload), e.payload) for e in opened] == [(type(opening), opening)]
    got = [e.data for e in sevents if isinstance(e, P.Message)]
    assert [(type(m), m) for m in got] == [(type(m), m) for m in msgs]
    session = opened[0].session
    for m in msgs:
        assert server.emit(session, sid, m, 0.0)
    cevents, _ = _pump(clink, conn, client, server)
    back = [e.data for e in cevents if isinstance(e, P.Chunk)]
    assert [(type(m), m) for m in back] == [(type(m), m) for m in msgs]


def test_a_text_fragment_that_splits_a_character_still_closes_malformed():
    cfg = Config()
    server = P.ServerProtocol(cfg, random.Random(0))
    client = P.ClientProtocol(cfg)
    clink, conn = client.connect(0.0), server.connect(0.0)
    _pump(clink, conn, client, server)
    sid = client.open("x", 0.0)
    _pump(clink, conn, client, server)
    euro = "€".encode()
    conn.receive(encode(Frame("data", {"s": sid, "q": 2, "fin": False, "k": "t"}, euro[:2])), 0.0)
    assert conn.close is not None and conn.close[0] == CloseCode.MALFORMED_FRAME


@given(size=st.integers(1, 8), text=st.text(min_size=1, max_size=50))
def test_text_fragments_are_whole_characters_even_below_four_bytes(size, text):
    kind, parts = P.split_message(text, size)
    assert kind == "t"
    decoded = [str(p, "utf-8") for p in parts]  # raises if a fragment splits a character
    assert "".join(decoded) == text
    assert all(len(p) <= size or len(s) == 1 for p, s in zip(parts, decoded))  # only a lone wide char may exceed


def test_notifier_wait_until_wakes_only_once_its_condition_holds():
    import trio
    import trio.testing

    from statemodel.stream.wslink import Notifier

    async def main():
        n = Notifier()
        state = {"ready": False}
        woke = []

        async def waiter():
            await n.wait_until(lambda: state["ready"])
            woke.append(trio.current_time())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            n.notify()  # a change that does not concern the waiter
            await trio.testing.wait_all_tasks_blocked()
            assert woke == []
            state["ready"] = True
            assert woke == []  # the condition is checked when notified, not polled
            n.notify()
        assert len(woke) == 1
        await n.wait_until(lambda: True)  # already true: returns at once

        with trio.move_on_after(1):  # cancelled while waiting: the condition is forgotten
            await n.wait_until(lambda: False)
        assert n._until == {}

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
