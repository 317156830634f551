"""`statemodel conform` as a third party runs it: a server in another process, reached by its
ws:// URL over loopback; the reference passes, the reference with a server-side bug fails the
cases written for that bug."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from statemodel.target.served import script_server  # `statemodel serve --app script` on a free port

QUICK = ["text_message_closes_4000", "older_duplicate_dropped_by_server", "resume_with_nothing_received_yet",
         "client_context_set_offline", "session_expires_after_ttl"]


def conform(*args: str, timeout: float = 300) -> tuple[int, str]:
    out = subprocess.run([sys.executable, "-m", "statemodel", "conform", *args], capture_output=True, text=True,
                         timeout=timeout)
    return out.returncode, out.stdout + out.stderr


def test_a_few_cases_pass_against_the_reference_server_over_loopback(tmp_path):
    with script_server() as url:
        args = [url, "--report", str(tmp_path)] + [a for name in QUICK for a in ("--case", name)]
        code, output = conform(*args)
    assert code == 0, output
    report = json.loads((tmp_path / "conform.json").read_text())
    verdicts = {c["name"]: c["verdict"] for c in report["cases"]}
    assert verdicts.pop("session_expires_after_ttl") == "skip"  # the server's clock is not ours
    assert set(verdicts.values()) == {"pass"}, output
    case = next(c for c in report["cases"] if c["name"] == "older_duplicate_dropped_by_server")
    sent = [f["frame"] for f in case["frames"] if f["dir"] == "c2s" and isinstance(f["frame"], dict)]
    assert {"t": "hello", "v": 1} in sent and any(f.get("t") == "data" for f in sent), sent[:5]
    assert "<table>" in (tmp_path / "conform.html").read_text()


def test_a_server_side_bug_fails_the_case_written_for_it_over_loopback():
    with script_server("dedupe_last_only") as url:
        code, output = conform(url, "--case", "older_duplicate_dropped_by_server", "--case", "text_message_closes_4000")
    assert code == 1, output
    assert "FAIL  §4    older_duplicate_dropped_by_server" in output and "re-delivered copy" in output, output
    assert "PASS  §2    text_message_closes_4000" in output, output


def test_an_unreachable_target_is_one_line_and_exit_2():
    pytest.importorskip("statemodel.target.preflight")  # the target preflight (issue 13.1)
    code, output = conform("ws://127.0.0.1:1/", timeout=60)
    assert code == 2 and "statemodel conform: error:" in output, output


@pytest.mark.slow  # about a minute on a loaded 2-core machine
@pytest.mark.timeout(600)
def test_the_whole_corpus_passes_against_the_reference_server_over_loopback(tmp_path):
    with script_server() as url:
        code, output = conform(url, "--report", str(tmp_path), timeout=580)
    assert code == 0, output
    summary = json.loads((tmp_path / "conform.json").read_text())["summary"]
    assert summary["fail"] == summary["error"] == 0 and summary["pass"] >= 35, summary


SERVER_SIDE = {  # mutant -> the cases that must fail with it over real sockets
    "dedupe_last_only": ["older_duplicate_dropped_by_server"],
    "empty_resume_is_new": ["resume_with_nothing_received_yet"],
    "stale_connection_ends_session": ["stale_connection_closing_keeps_session"],
    "no_fencing": ["second_connection_fences_during_replay", "resume_storm_fences_each_older"],
    "token_not_checked": ["forged_token_closes_4003", "stolen_token_closes_4003"],
    "no_dedupe": ["duplicate_item_delivered_once"],
    "replay_skips_first": ["replay_of_a_multi_item_message"],
    "end_not_replayed": ["end_replayed_after_a_drop"],
}


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("mutant", sorted(SERVER_SIDE))
def test_server_side_mutants_fail_their_cases_over_loopback(mutant):
    cases = SERVER_SIDE[mutant]
    with script_server(mutant) as url:
        code, output = conform(url, *[a for name in cases for a in ("--case", name)])
    assert code == 1, output
    for name in cases:
        assert any(line.startswith("FAIL") and name in line for line in output.splitlines()), output
