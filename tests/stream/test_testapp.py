"""The scripted app's content is a spec (PROTOCOL.md appendix A): other servers derive the same
chunks from seeds, so a faster implementation must produce exactly the documented mapping."""

import hashlib

import pytest

from statemodel.stream.testapp import ALPHABET, blob, text


@pytest.mark.parametrize("seed,chars", [(0, 0), (1, 1), (7, 255), (3, 4096), (11, 70_001)])
def test_text_is_the_alphabet_mapping_of_the_shake_bytes(seed, chars):
    raw = hashlib.shake_256(b"statemodel:%d" % seed).digest(chars)
    assert blob(seed, chars) == raw
    assert text(seed, chars) == "".join(ALPHABET[b % len(ALPHABET)] for b in raw)


def test_shorter_outputs_served_from_a_longer_one_are_exact_and_the_memo_stays_in_budget():
    from statemodel.stream import testapp

    try:
        testapp.set_memo(blob_bytes=150_000, text_bytes=4 * 150_000)
        for seed, n in [(5, 100_000), (5, 10), (5, 99_999), (6, 120_000), (5, 100_001), (5, 3)]:
            raw = hashlib.shake_256(b"statemodel:%d" % seed).digest(n)
            assert blob(seed, n) == raw
            assert text(seed, n) == "".join(ALPHABET[b % len(ALPHABET)] for b in raw)
            assert testapp._BLOBS.used <= 150_000 and testapp._TEXTS.used <= 4 * 150_000
        assert list(testapp._BLOBS.kept) == [5]  # one seed at a time fits: the last asked for
        testapp.set_memo(0, 0)
        assert blob(5, 10) == hashlib.shake_256(b"statemodel:5").digest(10)
        assert not testapp._BLOBS.kept and not testapp._TEXTS.kept
    finally:
        testapp.set_memo(testapp.MEMO_BLOB_BYTES, testapp.MEMO_TEXT_BYTES)
