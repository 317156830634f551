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
