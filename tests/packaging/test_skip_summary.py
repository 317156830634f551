"""Tests that need Redis, Chromium or root say at the end what was skipped and how to enable it."""

from __future__ import annotations

import subprocess
import sys

SUITE = """
import pytest

@pytest.mark.redis
@pytest.mark.skipif(True, reason="no redis here")
def test_needs_redis(): pass

@pytest.mark.browser
@pytest.mark.skipif(True, reason="no chromium here")
def test_needs_chromium_a(): pass

@pytest.mark.browser
@pytest.mark.skipif(True, reason="no chromium here")
def test_needs_chromium_b(): pass

@pytest.mark.skipif(True, reason="something else")
def test_other_skip(): pass

def test_runs(): pass
"""


def _pytest(tmp_path, *args):
    (tmp_path / "test_suite.py").write_text(SUITE)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                           *args, "test_suite.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_one_line_at_the_end_names_what_was_skipped_and_how_to_enable_it(tmp_path):
    proc = _pytest(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    [line] = [l for l in lines if l.startswith("statemodel: skipped")]
    assert "2 tests needing Chromium (install chromium" in line
    assert "1 test needing Redis (start redis-server" in line and "STATEMODEL_REDIS_URL" in line
    assert "root" not in line  # nothing needing root was skipped
    assert lines.index(line) >= len(lines) - 3  # at the end, beside pytest's own summary


def test_nothing_said_when_nothing_needing_them_was_skipped(tmp_path):
    proc = _pytest(tmp_path, "-k", "runs or other")
    assert proc.returncode == 0 and "statemodel: skipped" not in proc.stdout
