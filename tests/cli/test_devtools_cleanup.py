"""The browser tests' Chromium helper leaves no process behind and removes its profile.

A CI run failed in the helper's cleanup, not in a test: Chromium's browser process exits on
SIGTERM before its helper processes do, and one was still writing to ``Default/`` when the
profile directory was removed (OSError 39, "Directory not empty"). This stands in for
Chromium with a browser that behaves that way on purpose: its helper ignores SIGTERM and
keeps writing to the profile until killed.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import devtools

FAKE_BROWSER = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    profile = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--user-data-dir="))
    helper = subprocess.Popen([sys.executable, "-c", '''
    import os, signal, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    default = os.path.join(sys.argv[1], "Default")
    os.makedirs(default, exist_ok=True)
    for i in range(60_000):  # bounded: ends by itself after a minute or so
        open(os.path.join(default, "f%d" % (i % 50)), "w").close()
        time.sleep(0.001)
    ''', profile])
    with open(os.environ["FAKE_BROWSER_HELPER_PID"], "w") as f:
        f.write(str(helper.pid))
    with open(os.path.join(profile, "DevToolsActivePort"), "w") as f:
        f.write("9\\n/devtools/browser/fake\\n")
    time.sleep(60)
""")


def _gone(pid: int) -> bool:
    fields = devtools.stat_fields(pid)
    return fields is None or fields[0] == "Z"  # Z: exited, not yet reaped by its new parent


def test_cleanup_kills_helpers_that_outlive_the_browser_and_removes_the_profile(tmp_path, monkeypatch):
    script = tmp_path / "browser"
    script.write_text(f"#!{sys.executable}\n{FAKE_BROWSER}")
    script.chmod(0o755)
    pid_file = tmp_path / "helper.pid"
    monkeypatch.setenv("FAKE_BROWSER_HELPER_PID", str(pid_file))
    monkeypatch.setattr(devtools, "CHROMIUM", str(script))

    with devtools.chromium() as port:
        assert port == 9
        helper = int(pid_file.read_text())
        profile = Path(Path(f"/proc/{helper}/cmdline").read_text().split("\0")[-2])  # its last argument
        assert not _gone(helper)
    assert _gone(helper), f"the browser's helper process {helper} outlived the browser"
    assert not profile.exists(), f"the profile {profile} was not removed"
