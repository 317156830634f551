"""Same seeded fault scenario => identical trace digests, across separate processes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from statemodel.net import selfcheck


def _digest_in_subprocess(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "statemodel.net.selfcheck", *args],
        capture_output=True, text=True, timeout=60, check=True,
    )
    return out.stdout.strip()


@pytest.mark.parametrize("mode", [[], ["--websocket"]], ids=["raw", "websocket"])
def test_same_seed_same_digest_in_separate_processes(mode):
    first = _digest_in_subprocess("--seed", "3", *mode)
    second = _digest_in_subprocess("--seed", "3", *mode)
    assert len(first) == 64
    assert first == second
    assert _digest_in_subprocess("--seed", "4", *mode) != first


def test_websocket_selfcheck_traces_frames_and_splits_at_boundaries():
    import trio
    import trio.testing

    net = trio.run(selfcheck.ws_echo, 5, clock=trio.testing.MockClock(autojump_threshold=0))
    kinds = [e.kind for e in net.trace]
    assert "frame" in kinds
    close_frames = [e for e in net.trace if e.kind == "frame" and e.detail == "op=8"]
    assert len(close_frames) == 2  # one close frame each way
    # SplitAtFrameBoundary cut every header after its first byte: 1-byte deliveries exist
    assert any(e.kind == "deliver" and e.size == 1 for e in net.trace)
