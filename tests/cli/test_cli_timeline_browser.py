"""timeline.html renders in real headless Chromium with its lanes and the violation."""

from __future__ import annotations

import shutil
import subprocess
import tempfile

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)"),
]


def _chromium(*args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=90,
        )


def test_timeline_renders_lanes_and_violation(dup_report):
    base, _ = dup_report
    page = base / "report" / "failure-1" / "timeline.html"
    dom = _chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    for lane in ("<th>client:0</th>", "<th>network</th>", "<th>server:0</th>"):
        assert lane in html
    assert 'class="ev fault"' in html and "ToyFault(kind='drop')" in html
    assert "Invariant violated: delivered_is_prefix_of_sent" in html
    assert "expected: [0]" in html and "actual:   [0, 0]" in html
    assert "http://" not in html.replace("http://www.w3.org", "")  # self-contained: no network
    shot = base / "timeline.png"
    png = _chromium(f"--screenshot={shot}", "--window-size=1200,900", page.as_uri())
    assert png.returncode == 0 and shot.stat().st_size > 10_000  # a real, non-blank image
