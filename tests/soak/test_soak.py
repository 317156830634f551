"""Soak and external-target attacks on real loopback TCP (real time is unavoidable here, so
these tests assert only invariants and leaks, never timings)."""

from __future__ import annotations

import subprocess
import sys

import trio

from statemodel.cli import main
from statemodel.soak import SoakConfig, soak


def test_short_soak_keeps_every_invariant_and_returns_to_baseline(tmp_path):
    """A CI-sized soak: honest sessions through faults, hostile peers beside them; the server
    subprocess must come back to its idle connections/sessions/tasks/fds afterwards."""
    code = main(["soak", "--duration", "12", "--sessions", "3", "--seed", "5", "--session-ttl", "5",
                 "--no-slow-attacks", "--report", str(tmp_path), "--json"])
    import json

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert code == 0, summary["failures"]
    assert summary["passed"] and summary["honest"]["streams"] > 0
    f = summary["figures"]
    assert f["end_connections"] == 0 and f["end_sessions"] == 0
    assert f["end_tasks"] <= f["baseline_tasks"] and f["end_fds"] <= f["baseline_fds"] + 2
    assert sum(v["ok"] for v in summary["attacks"].values()) > 0
    assert len(summary["samples"]) >= 5 and all(s["rss"] for s in summary["samples"])


def test_hostile_only_against_an_external_server_url():
    """`--target ws://… --hostile-only`: every attack against a server we only know by URL
    (here the reference server in its own process, on loopback)."""
    proc = subprocess.Popen([sys.executable, "-m", "statemodel.soak.server", "--port", "0",
                             "--max-sessions", "12", "--interval", "60"], stdout=subprocess.PIPE)
    try:
        port = int(proc.stdout.readline().split()[1])
        cfg = SoakConfig(duration=0.1, target=f"ws://127.0.0.1:{port}/", hostile_only=True,
                         max_sessions=12, slow_attacks=False)
        result = trio.run(soak, cfg)
    finally:
        proc.terminate()
        proc.wait(10)
    assert result.passed, result.failures
    assert set(result.attacks) >= {"forged_token", "stolen_token", "oversized_frame", "replay_old_frames"}
    assert all(row["failed"] == 0 for row in result.attacks.values())


def test_bad_target_url_is_a_usage_error(capsys):
    assert main(["soak", "--target", "http://example.invalid/"]) == 2
    assert "ws://host:port" in capsys.readouterr().err
