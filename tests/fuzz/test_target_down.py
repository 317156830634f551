"""A ws:// server that stops answering during a run (crashed, killed, redeployed) fails the
example under way and every run after it. Without a check the shrinker ran against it, each
run waiting out every real timer: 262 s of a 10 s --shrink-budget, then "the smallest program
no longer fails (a flaky failure?)". Now the server is checked once a failure is found, and a
dead one is an error of the run (exit 2) naming the URL, with nothing shrunk or replayed."""

from __future__ import annotations

import socket

from hypothesis import settings

import statemodel.profiles  # noqa: F401  (registers hunt)
from statemodel.fuzz.config import FuzzConfig
from statemodel.fuzz.runner import run_worker


# Two-step programs: an example against a dead server waits out real timers (a 20-step one, 51 s).
settings.register_profile("target-down", settings.get_profile("hunt"), stateful_step_count=2)


def test_a_server_gone_during_the_run_is_an_error_not_a_failure_to_shrink(monkeypatch) -> None:
    monkeypatch.delenv("STATEMODEL_MACHINE", raising=False)
    # Gone before the first example (the CLI's preflight ran before it went): bound, never
    # listening, so every connection is refused and the port stays ours.
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{held.getsockname()[1]}/"
        result = run_worker(FuzzConfig(target=url, transport="tcp", examples=5, seed=1, shrink_budget=5.0,
                                       profile="target-down"))
    assert result.failures == [] and result.shrink_runs == 0 and result.replays == 0
    assert result.error.startswith("the target stopped answering during the run, so the failure just found (")
    assert f"target {url}: cannot connect to 127.0.0.1:" in result.error
