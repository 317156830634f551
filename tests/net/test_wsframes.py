"""The incremental WebSocket frame scanner: boundaries survive any split of the stream."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from statemodel.net.wsframes import HEADER, HTTP, PAYLOAD, FrameScanner

HANDSHAKE = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"


def encode(opcode: int, payload: bytes, masked: bool) -> bytes:
    n = len(payload)
    first = bytes([0x80 | opcode])
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head = first + bytes([mask_bit | n])
    elif n < 1 << 16:
        head = first + bytes([mask_bit | 126]) + n.to_bytes(2, "big")
    else:
        head = first + bytes([mask_bit | 127]) + n.to_bytes(8, "big")
    if masked:
        return head + b"\x01\x02\x03\x04" + payload  # the scanner never unmasks, so any key will do
    return head + payload


frames = st.lists(
    st.tuples(st.sampled_from([0x1, 0x2, 0x8, 0x9, 0xA]), st.sampled_from([0, 1, 125, 126, 127, 65535, 65536]), st.booleans()),
    min_size=1, max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(frames=frames, cuts=st.lists(st.integers(1, 70_000), max_size=12))
def test_segments_find_every_frame_whatever_the_split(frames, cuts):
    wire = HANDSHAKE + b"".join(encode(op, b"\x5a" * n, m) for op, n, m in frames)
    boundaries = sorted({c for c in cuts if c < len(wire)})
    pieces = [wire[a:b] for a, b in zip([0] + boundaries, boundaries + [len(wire)])]
    scanner = FrameScanner()
    seen, parts, offset = [], [], 0
    for piece in pieces:
        for s, e, part, op, first in scanner.feed(piece):
            assert 0 <= s < e <= len(piece)
            parts.append((offset + s, offset + e, part, op, first))
        seen.extend(scanner.frames)
        offset += len(piece)
    assert seen == [(op, n) for op, n, _ in frames]
    # segments tile the stream exactly, HTTP first, and each frame's first segment is a header
    assert [p[0] for p in parts[1:]] == [p[1] for p in parts[:-1]]
    assert parts[0][0] == 0 and parts[-1][1] == len(wire)
    assert sum(p[1] - p[0] for p in parts if p[2] == HTTP) == len(HANDSHAKE)
    starts = [p for p in parts if p[4]]
    assert len(starts) == len(frames) and all(p[2] == HEADER for p in starts)
    assert [p[3] for p in starts] == [op for op, _, _ in frames]
    assert sum(p[1] - p[0] for p in parts if p[2] == PAYLOAD) == sum(n for _, n, _ in frames)
    assert scanner.at_boundary


def test_scanner_stays_in_http_until_the_blank_line_even_when_split_inside_it():
    scanner = FrameScanner()
    assert scanner.feed(b"GET / HTTP/1.1\r\n\r") == [(0, 17, HTTP, None, False)]
    assert scanner.in_http
    segs = scanner.feed(b"\n\x88\x00")
    assert segs[0] == (0, 1, HTTP, None, False)
    assert segs[1] == (1, 3, HEADER, 0x8, True)
    assert scanner.frames == [(0x8, 0)]


def test_a_stream_without_an_http_head_is_treated_as_opaque_bytes():
    """Raw TCP through the proxy must not pay for a blank-line search forever."""
    scanner = FrameScanner()
    for _ in range(5):
        assert scanner.feed(b"\x88" * 20_000) == [(0, 20_000, HTTP, None, False)]
    assert scanner.opaque and scanner.frames == []


def test_take_frame_returns_whole_frames_unmasked_and_waits_for_the_rest() -> None:
    """The wire views' one frame reader (net.wsframes.take_frame): fin, opcode, unmasked payload."""
    from statemodel.net.wsframes import take_frame

    payload = bytes(range(256)) * 2  # 512 bytes: a 16-bit length
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    frame = bytes([0x82, 0x80 | 126]) + len(payload).to_bytes(2, "big") + mask + masked
    close = bytes([0x88, 2]) + (4006).to_bytes(2, "big")
    buf = bytearray(frame[:-1])
    assert take_frame(buf) is None and len(buf) == len(frame) - 1  # incomplete: nothing taken
    buf += frame[-1:] + close
    assert take_frame(buf) == (True, 0x2, payload)
    assert take_frame(buf) == (True, 0x8, (4006).to_bytes(2, "big"))
    assert take_frame(buf) is None and not buf
