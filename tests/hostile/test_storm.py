"""The client against servers that keep failing it right after welcome (virtual time): it
must never reconnect in a tight loop, and final codes stay final -- the server's, and the
client's own when it closes for garbage (PROTOCOL.md §10, §11)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from statemodel.hostile import bounds
from statemodel.hostile.storm import BEHAVIOURS, FINAL_AFTER_WELCOME, GARBAGE, count_connections
from statemodel.machine.logwatch import TracebackWatch
from statemodel.stream.config import Config

CONFIG = Config()
SECONDS = 60.0


@pytest.mark.parametrize("behaviour", BEHAVIOURS, ids=str)
def test_no_retry_storm(behaviour):
    limit = bounds.reconnects_within(CONFIG, SECONDS)
    with TracebackWatch() as tracebacks:
        result = trio.run(lambda: count_connections(behaviour, CONFIG, SECONDS, stop_after=limit),
                          clock=trio.testing.MockClock(autojump_threshold=0))
    rate = result.describe()
    assert not result.stopped_early and result.connections <= limit, (
        f"retry storm against a server that does {behaviour} after welcome: {rate}, "
        f"more than {limit} allowed in {SECONDS:g} s (backoff {CONFIG.backoff_base:g}..{CONFIG.backoff_max:g} s)")
    if behaviour in FINAL_AFTER_WELCOME:
        assert result.connections == 1 and result.gave_up and f"({behaviour})" in result.gave_up, (
            f"close code {behaviour} is final: expected one connection and SessionClosed({behaviour}); "
            f"got {rate}, gave up: {result.gave_up}")
    if behaviour in GARBAGE:  # the client closes 4000/4002 itself: final, however the close ends
        assert result.connections == 1 and result.gave_up, (
            f"the client's own final close for {behaviour} must stand (no retry): got {rate}, "
            f"gave up: {result.gave_up}")
    tracebacks.check(f"client against a server doing {behaviour}")
