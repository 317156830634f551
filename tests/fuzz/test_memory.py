"""A fuzz worker's memory figures (statemodel.fuzz.memory): what peak and plateau mean."""

from __future__ import annotations

import sys

import pytest

from statemodel.fuzz.memory import RssMeter, pin_malloc, rss_mib


def test_plateau_is_the_median_of_the_second_half_and_peak_the_high_water_mark():
    meter = RssMeter(every=3600)  # no sampling thread needed: samples are set by hand
    meter.samples = [(0, 80.0), (60, 300.0), (120, 150.0), (180, 160.0), (240, 170.0)]
    rss = rss_mib()  # read before the summary: the high-water mark it reads is at least this
    summary = meter.summary()
    assert summary["plateau_mib"] == 160.0  # median of 150, 160, 170: a start-up spike is not the plateau
    assert summary["last_mib"] == 170.0 and summary["samples"] == 5
    assert summary["peak_mib"] >= round(rss, 1) > 0  # the kernel's VmHWM for this process, as rounded


def test_the_meter_samples_at_start_and_end_at_least():
    with RssMeter(every=3600) as meter:
        pass
    assert meter.summary()["samples"] == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_malloc_threshold_can_be_pinned():
    assert pin_malloc() is True
