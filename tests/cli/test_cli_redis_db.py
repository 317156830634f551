"""Shared failures through a real Redis on loopback (`.ci/run` starts one, STATEMODEL_REDIS_URL)."""

from __future__ import annotations

import os
import uuid

import pytest

from cli_helpers import statemodel

REDIS_URL = os.environ.get("STATEMODEL_REDIS_URL")

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="STATEMODEL_REDIS_URL is unset (no redis-server on loopback)"),
]


def test_failure_found_by_one_process_replays_from_redis_in_another(tmp_path):
    url = f"{REDIS_URL}?prefix=statemodel-test-{uuid.uuid4().hex}"  # isolated keys per test run
    found = statemodel("fuzz", "--mutant", "dup", "--examples", "200", "--seed", "11", "--db", url, cwd=tmp_path)
    assert found.returncode == 1, found.stdout + found.stderr
    # A fresh process on "another machine": the replay profile generates nothing new,
    # so it can only fail by reusing what the first process saved in Redis.
    replayed = statemodel("fuzz", "--mutant", "dup", "--profile", "replay", "--seed", "12345",
                          "--db", url, "--report", str(tmp_path / "r"), cwd=tmp_path)
    assert replayed.returncode == 1, replayed.stdout + replayed.stderr
    assert "invariant delivered_is_prefix_of_sent violated" in replayed.stdout
    assert (tmp_path / "r" / "failure-1" / "repro_test.py").is_file()
    # Other configurations are kept apart in the same Redis: nothing to replay for them.
    other = statemodel("fuzz", "--profile", "replay", "--seed", "1", "--db", url, cwd=tmp_path)
    assert other.returncode == 0, other.stdout + other.stderr
