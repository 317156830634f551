"""The shared-server allowance's parts (statemodel/target/shared.py): the starvation credit
and which faults may keep a 1013 from the client."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from statemodel.net import faults as F
from statemodel.target.proxied import REAL_TIME_CONFIG
from statemodel.target.shared import StarvationLog, notice_lag, withholds_server_close

LAG = notice_lag(REAL_TIME_CONFIG)  # 0.9 s


# ---- the starvation credit -------------------------------------------------------------------
class Host:
    """A host's starvation over time: ``(seconds, fraction starved)`` pieces, from t = 0."""

    def __init__(self, pieces) -> None:
        self.pieces = pieces
        self.now = 0.0

    def starved(self, t: float) -> float:
        total, start = 0.0, 0.0
        for length, fraction in self.pieces:
            total += fraction * max(0.0, min(t, start + length) - start)
            start += length
        return total

    def meter(self) -> float:
        return self.starved(self.now)


def sampled(host: Host, until: float, period: float = 0.02) -> StarvationLog:
    log = StarvationLog(host.meter, period)
    k = 0
    while k * period <= until:
        host.now = k * period
        log.note(host.now)
        k += 1
    host.now = until
    return log


def exact_window(host: Host, notice: float, lag: float, up: float) -> float:
    """Starvation in the last ``lag`` seconds of time the host gave us before ``notice``."""
    lo, hi = 0.0, notice  # the edge: (notice - t) - (S(notice) - S(t)) == lag, searched by bisection
    for _ in range(100):
        mid = (lo + hi) / 2
        if (notice - mid) - (host.starved(notice) - host.starved(mid)) >= lag:
            lo = mid
        else:
            hi = mid
    return host.starved(notice) - host.starved(max(lo, up))


def test_starvation_long_before_the_loss_is_not_credited():
    """Session 11 counted every starved second since the connection came up: 5 s starved
    early in a 20 s connection excused any reset after any drop (the slack is 0.1 s)."""
    host = Host([(2.0, 0.0), (10.0, 0.5), (8.0, 0.0)])
    log = sampled(host, 20.0)
    assert host.starved(20.0) == pytest.approx(5.0)
    assert log.credit(20.0, LAG, since=0.0) == pytest.approx(0.0)


def test_starvation_while_the_client_was_noticing_is_credited():
    """A freeze in the last moments before the notice: the client's timers fired late by it."""
    host = Host([(19.5, 0.0), (3.0, 1.0), (0.2, 0.0)])
    log = sampled(host, 22.7)
    assert log.credit(22.7, LAG, since=0.0) == pytest.approx(3.0, abs=0.03)


def test_nothing_before_the_connection_came_up_is_credited():
    host = Host([(5.0, 1.0), (0.3, 0.0)])
    log = sampled(host, 5.3)
    assert log.credit(5.3, LAG, since=host.starved(5.0)) == pytest.approx(0.0)


@settings(max_examples=60, deadline=None)
@given(pieces=st.lists(st.tuples(st.sampled_from([0.01, 0.05, 0.3, 1.0, 4.0]), st.sampled_from([0.0, 0.25, 1.0])),
                       min_size=1, max_size=12),
       up_at=st.floats(0, 1), lag=st.sampled_from([LAG, 0.05, 3.0]))
def test_the_credit_covers_the_window_and_overshoots_by_one_period_at_most(pieces, up_at, lag):
    """Never short of the starvation in the window (a false failure), never more than the
    whole connection's, and looser than exact by at most one sampling period."""
    host = Host(pieces)
    end = sum(length for length, _ in pieces)
    up = up_at * end
    period = 0.02
    log = sampled(host, end, period)
    credit = log.credit(end, lag, since=host.starved(up))
    exact = exact_window(host, end, lag, up)
    assert exact - 1e-6 <= credit <= host.starved(end) - host.starved(up) + 1e-6
    assert credit <= exact + period + 1e-6


# ---- which faults may keep a 1013 from the client --------------------------------------------
def test_only_faults_on_the_servers_close_frames_withhold_them():
    assert withholds_server_close(F.DropCloseFrame(direction="s2c"))
    assert withholds_server_close(F.DropCloseFrame())  # both directions
    assert withholds_server_close(F.DelayCloseFrame(direction="both", seconds=1.0))
    assert not withholds_server_close(F.DropCloseFrame(direction="c2s"))  # the client's close only
    assert not withholds_server_close(F.Partition(direction="s2c"))  # the client gives up first (dead_after < stall_after)
    assert not withholds_server_close(F.Abort())
