"""Guarantees of the payload strategies: encodability, round trips, bounds, and that the
named edge cases are actually reachable (found with a fixed seed, so deterministic)."""

from __future__ import annotations

import json
import pickle
import unicodedata
from random import Random

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from statemodel.stream import testapp
from statemodel.strategies.payloads import (
    BOUNDARY_SIZES,
    KIB,
    MIB,
    SeededBytes,
    binary,
    burst_specs,
    chunk_specs,
    json_documents,
    multipart_chunks,
    sizes,
    unicode_text,
)

pytestmark = pytest.mark.timeout(120)

CHECK = settings(max_examples=150, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEARCH = settings(max_examples=3000, database=None, deadline=None, phases=["generate"])


def reachable(strategy: st.SearchStrategy, condition) -> object:
    """Find a value satisfying ``condition`` with a fixed seed (fails if it is unreachable)."""
    return find(strategy, condition, settings=SEARCH, random=Random(0))


# ----- unicode_text ----------------------------------------------------------------------


@CHECK
@given(st.integers(0, 30).flatmap(lambda lo: st.tuples(st.just(lo), unicode_text(lo, lo + 40))))
def test_text_encodes_as_utf8_within_the_length_bounds(case: tuple[int, str]) -> None:
    min_chars, text = case
    assert min_chars <= len(text) <= min_chars + 40
    assert text.encode("utf-8").decode("utf-8") == text  # no lone surrogates


@pytest.mark.parametrize(
    "name, condition",
    [
        ("ZWJ sequence", lambda s: "\u200d" in s and any(ord(c) > 0xFFFF for c in s)),
        ("astral", lambda s: any(ord(c) > 0xFFFF for c in s)),
        ("combining mark", lambda s: any(unicodedata.combining(c) for c in s)),
        ("RTL", lambda s: any(unicodedata.bidirectional(c) in ("R", "AL") for c in s)),
        ("NUL", lambda s: "\x00" in s),
        ("BOM", lambda s: "\ufeff" in s),
        ("CRLF", lambda s: "\r\n" in s),
    ],
)
def test_text_reaches_the_edge_cases(name: str, condition) -> None:
    assert condition(reachable(unicode_text(max_chars=50), condition)), name


def test_text_rejects_inverted_bounds() -> None:
    with pytest.raises(ValueError, match="min_chars <= max_chars"):
        unicode_text(5, 2)


# ----- json_documents --------------------------------------------------------------------


@CHECK
@given(json_documents())
def test_json_documents_round_trip(value: object) -> None:
    assert json.loads(json.dumps(value)) == value
    encoded = json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    assert json.loads(encoded) == value


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


def _leaves(value: object):
    if isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    elif isinstance(value, dict):
        yield from value.keys()
        for v in value.values():
            yield from _leaves(v)
    else:
        yield value


def test_json_documents_reach_nesting_big_ints_floats_and_unicode_keys() -> None:
    assert _depth(reachable(json_documents(), lambda v: _depth(v) >= 3)) >= 3
    big = lambda v: any(type(x) is int and abs(x) > 2**64 - 1 for x in _leaves(v))  # noqa: E731
    assert big(reachable(json_documents(), big))
    floaty = lambda v: any(type(x) is float and x != int(x) for x in _leaves(v))  # noqa: E731
    assert floaty(reachable(json_documents(), floaty))
    astral_key = lambda v: isinstance(v, dict) and any(any(ord(c) > 0xFFFF for c in k) for k in v)  # noqa: E731
    assert astral_key(reachable(json_documents(), astral_key))


# ----- sizes and binary ------------------------------------------------------------------


@CHECK
@given(st.data())
def test_sizes_stay_within_bounds(data: st.DataObject) -> None:
    lo = data.draw(st.integers(0, 3 * MIB))
    hi = data.draw(st.integers(lo, 5 * MIB))
    assert lo <= data.draw(sizes(max_size=hi, min_size=lo)) <= hi


@pytest.mark.parametrize("boundary", [0, 1, 125, 126, 64 * KIB - 1, 64 * KIB + 1, MIB - 1, MIB, MIB + 1, 2 * MIB + 1])
def test_sizes_hit_the_named_boundaries(boundary: int) -> None:
    assert reachable(sizes(), lambda s: s == boundary) == boundary


def test_sizes_include_max_and_reach_every_order_of_magnitude() -> None:
    assert reachable(sizes(max_size=3 * MIB + 7), lambda s: s == 3 * MIB + 7) == 3 * MIB + 7
    for bit in range(10, 22):
        assert reachable(sizes(), lambda s, b=bit: 2**b < s < 2 ** (b + 1) and s not in BOUNDARY_SIZES)


def test_sizes_are_mostly_small() -> None:
    drawn: list[int] = []

    @settings(max_examples=400, database=None, derandomize=True, phases=["generate"])
    @given(sizes())
    def collect(size: int) -> None:
        drawn.append(size)

    collect()
    assert sum(s < KIB for s in drawn) > len(drawn) / 2


@CHECK
@given(st.data())
def test_binary_respects_the_bounds(data: st.DataObject) -> None:
    lo = data.draw(st.integers(0, 2 * KIB))
    hi = data.draw(st.integers(lo, 2 * MIB))
    assert lo <= len(data.draw(binary(lo, hi))) <= hi


def test_binary_reaches_megabytes_and_patterns() -> None:
    assert len(reachable(binary(max_size=4 * MIB), lambda b: len(b) > 2 * MIB)) > 2 * MIB
    assert reachable(binary(max_size=4 * MIB), lambda b: len(b) > 600 and set(b) == {0})
    assert reachable(binary(max_size=4 * MIB), lambda b: len(b) > 600 and len(set(b)) > 200)


def test_big_binary_prints_as_a_runnable_recipe() -> None:
    value = reachable(binary(max_size=4 * MIB), lambda b: len(b) > MIB)
    assert isinstance(value, SeededBytes) and len(repr(value)) < 60
    assert eval(repr(value), {"SeededBytes": SeededBytes}) == value  # noqa: S307
    assert pickle.loads(pickle.dumps(value)) == value
    assert set(SeededBytes("ascii", 3, 5000)) <= set(range(32, 127))
    with pytest.raises(ValueError, match="unknown pattern"):
        SeededBytes("stripes", 1, 10)


# ----- multipart_chunks ------------------------------------------------------------------


def _parse_multipart(chunks: list[bytes]) -> list[tuple[dict[str, str], bytes]]:
    closing = chunks[-1]
    assert closing.startswith(b"--") and closing.endswith(b"--\r\n")
    delimiter = closing[:-4]
    parts = []
    for chunk in chunks[:-1]:
        assert chunk.startswith(delimiter + b"\r\n") and chunk.endswith(b"\r\n")
        head, _, body = chunk[len(delimiter) + 2 : -2].partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode("ascii").split("\r\n"))
        assert delimiter not in body
        parts.append((headers, body))
    return parts


@CHECK
@given(multipart_chunks())
def test_multipart_chunks_parse_back_into_their_parts(chunks: list[bytes]) -> None:
    parts = _parse_multipart(chunks)
    assert [h["X-Part-Seq"] for h, _ in parts] == [str(i) for i in range(len(parts))]
    assert all("Content-Type" in h for h, _ in parts)


def test_multipart_boundary_never_appears_in_a_body() -> None:
    chunks = reachable(multipart_chunks(), lambda c: len(c) >= 4)
    assert len(_parse_multipart(chunks)) >= 3


# ----- chunk_specs -----------------------------------------------------------------------


@CHECK
@given(chunk_specs(max_size=64 * KIB))
def test_chunk_specs_are_commands_the_scripted_app_accepts(spec: dict) -> None:
    assert json.loads(json.dumps(spec)) == spec  # they travel as JSON commands
    chunk = testapp.chunk_of(spec)
    if spec["kind"] == "bytes":
        assert len(chunk) == spec["size"] <= 64 * KIB
    elif spec["kind"] == "text":
        assert len(chunk) == spec["chars"] <= 32 * KIB
    else:
        assert json.loads(chunk) == spec["value"]


def test_chunk_specs_reach_big_payloads_without_building_them() -> None:
    spec = reachable(chunk_specs(), lambda s: s["kind"] == "bytes" and s["size"] == 2 * MIB)
    assert spec["seed"] in range(256)
    assert reachable(chunk_specs(), lambda s: s["kind"] == "text" and s["chars"] > MIB)
    assert reachable(chunk_specs(), lambda s: s["kind"] == "json" and isinstance(s["value"], dict) and s["value"])


@pytest.mark.parametrize("over", [0, 1, 7])
def test_burst_specs_exceed_the_bound_plus_their_largest_message_by_over(over: int) -> None:
    limit = 1000
    specs = burst_specs(limit, over)
    chunks = [testapp.chunk_of(spec) for spec in specs]
    assert all(spec["kind"] == "bytes" and json.loads(json.dumps(spec)) == spec for spec in specs)
    largest = max(len(c) for c in chunks)
    assert len(chunks) == 2 and largest <= limit + over < sum(len(c) for c in chunks)
    assert sum(len(c) for c in chunks) - (limit + largest) == over  # over=0: the bound exactly
    assert chunks[0] != chunks[1]  # two messages, told apart by content


def test_burst_specs_reject_negative_figures() -> None:
    with pytest.raises(ValueError, match="limit >= 0"):
        burst_specs(-1)
    with pytest.raises(ValueError, match="over >= 0"):
        burst_specs(10, -1)

