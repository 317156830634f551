"""Hypothesis strategies for faults, named network conditions and fault schedules.

Everything drawn here is a value from ``statemodel.net.faults``: frozen dataclasses whose
``repr`` is runnable Python, so a shrunk step program reads (and replays) as written.
Sizes and times are small on purpose: a short virtual run should still hit every kind.
"""

from __future__ import annotations

from hypothesis import strategies as st

from statemodel.net import faults as F

DIRECTIONS = st.sampled_from(["c2s", "s2c", "both"])
ONE_WAY = st.sampled_from(["s2c", "c2s"])

# Named conditions people recognise; each is a tuple of degrade faults applied together.
PROFILES: dict[str, tuple[F.Fault, ...]] = {
    "lan": (F.Latency(seconds=0.001),),
    "wifi_lossy": (F.Latency(seconds=0.02, jitter=0.08), F.Slice(max_bytes=1400)),
    "3g": (F.Latency(seconds=0.15, jitter=0.1), F.Bandwidth(bytes_per_second=250_000)),
    "satellite": (F.Latency(seconds=0.6, jitter=0.05), F.Bandwidth(bytes_per_second=1_000_000)),
    "congested": (F.Latency(seconds=0.08, jitter=0.3), F.Bandwidth(bytes_per_second=60_000), F.Slice(max_bytes=512)),
}


def drop_faults() -> st.SearchStrategy[F.Fault]:
    """Faults that break one link: clean close, reset, half a frame, a dead direction, a failed handshake."""
    return st.one_of(
        st.just(F.Abort()),
        st.just(F.CleanClose()),
        st.builds(F.TruncateMidFrame, direction=ONE_WAY),
        st.builds(F.HalfOpen, direction=ONE_WAY),
        st.just(F.DropDuringHandshake()),
    )


def degrade_faults() -> st.SearchStrategy[F.Fault]:
    """Conditions that slow or stall links until healed (latency, bandwidth, slicing, clog, partition, frame-aware)."""
    return st.one_of(
        st.builds(F.Latency, direction=DIRECTIONS, seconds=st.sampled_from([0.01, 0.1, 0.5]),
                  jitter=st.sampled_from([0.0, 0.05, 0.3])),
        st.builds(F.Bandwidth, direction=DIRECTIONS, bytes_per_second=st.sampled_from([20_000, 200_000, 2_000_000])),
        st.builds(F.Slice, direction=DIRECTIONS, max_bytes=st.sampled_from([1, 7, 1400])),
        st.builds(F.Clog, direction=DIRECTIONS),
        st.builds(F.Partition, direction=DIRECTIONS),
        st.builds(F.SplitAtFrameBoundary, direction=DIRECTIONS),
        st.builds(F.DelayCloseFrame, direction=DIRECTIONS, seconds=st.sampled_from([0.5, 3.0])),
        st.builds(F.DropCloseFrame, direction=DIRECTIONS),
    )


def network_profiles() -> st.SearchStrategy[tuple[F.Fault, ...]]:
    """One of the named conditions in ``PROFILES`` (lan, wifi_lossy, 3g, satellite, congested)."""
    return st.sampled_from(sorted(PROFILES)).map(PROFILES.__getitem__)


def fault_schedules(
    max_steps: int = 8, horizon: float = 30.0, links: int = 1
) -> st.SearchStrategy[F.Scenario]:
    """A timed fault schedule (``Scenario``) any backend can run; always ends healed."""
    step = st.builds(
        F.Step,
        at=st.floats(0, horizon, allow_nan=False).map(lambda t: round(t, 3)),
        fault=st.one_of(drop_faults(), degrade_faults()),
        link=st.none() | st.integers(0, max(0, links - 1)),
    )
    return st.lists(step, max_size=max_steps).map(
        lambda steps: F.Scenario(tuple(steps) + (F.Step(at=horizon, fault=F.Heal()),))
    )
