"""The conformance corpus: well-formed cases, all passing on the reference, each mutant failing
the cases written for it, and every scenario case reaching its scenario class."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from statemodel.conform import CASES_DIR, Case, CaseError, case_from_failure, load_cases, run_case, write_case
from statemodel.machine.coverage import SCENARIOS
from statemodel.stream.mutants import MUTANTS

CASES = load_cases()
PROTOCOL = (Path(__file__).parents[2] / "PROTOCOL.md").read_text()

# mutant -> a case that must fail with it on (each from a different part of the spec).
CAUGHT_BY = {
    "ack_wrong_stream": "replay_buffer_full_then_drop",
    "cancel_lost_on_resume": "cancel_while_offline_survives_resume",
    "client_context_offline_dropped": "client_context_set_offline",
    "context_not_restored": "server_context_survives_resume",
    "dedupe_last_only": "older_duplicate_dropped_by_server",
    "empty_resume_is_new": "resume_with_nothing_received_yet",
    "end_not_replayed": "end_replayed_after_a_drop",
    "evict_without_reset": "lost_streams_are_reset",
    "fin_by_short_fragment": "message_sizes_at_fragment_boundaries",
    "inflight_per_connection": "item_order_across_reconnects",
    "lost_ignored_by_client": "lost_streams_are_reset",
    "no_backpressure": "replay_buffer_full_then_drop",
    "no_dedupe": "duplicate_item_delivered_once",
    "no_fencing": "second_connection_fences_during_replay",
    "partial_per_connection": "drop_inside_a_fragment_sequence",
    "recovered_after_restart": "restart_resets_never_recovers",
    "recovered_despite_loss": "lost_streams_are_reset",
    "replay_skips_first": "replay_of_a_multi_item_message",
    "seq_restart_per_connection": "item_order_across_reconnects",
    "split_inside_char": "message_sizes_at_fragment_boundaries",
    "stale_connection_ends_session": "stale_connection_closing_keeps_session",
    "token_not_checked": "forged_token_closes_4003",
    "trim_when_full": "replay_buffer_full_then_drop",
    "ttl_from_last_resume": "long_connected_session_resumes",
}


def test_cases_are_well_formed_and_name_sections_protocol_md_has():
    assert len(CASES) >= 40
    headings = set(re.findall(r"^## (\d+[a-z]?|Appendix [AB])\.", PROTOCOL, re.M))
    sections = {h.replace("Appendix ", "") for h in headings}
    for case in CASES:
        assert case.section.split(".")[0] in sections, case.name
    kinds = {c.kind for c in CASES}
    assert kinds == {"program", "attack"}


def test_every_mutant_has_a_case_that_catches_it():
    assert set(CAUGHT_BY) == set(MUTANTS)


@pytest.mark.parametrize("case", [c for c in CASES if "kept" not in c.tags], ids=lambda c: c.name)
def test_case_passes_on_the_reference(case):
    result = run_case(case, "reference")
    assert result.verdict == "pass", result.message
    assert result.frames, "the wire tap recorded no frame"
    if case.scenario is not None:
        assert case.scenario in SCENARIOS


@pytest.mark.parametrize("mutant", sorted(CAUGHT_BY))
def test_the_case_written_for_a_mutant_fails_with_it(mutant):
    case = next(c for c in CASES if c.name == CAUGHT_BY[mutant])
    result = run_case(case, "reference", frozenset({mutant}))
    assert result.verdict == "fail", f"{case.name} passed with {mutant}"


def test_scenario_cases_reach_their_scenario():
    """A case that claims a scenario class reaches it on the reference."""
    from statemodel.conform.runner import FrameLog, machine_for
    from statemodel.report.program import run_program

    for case in [c for c in CASES if c.scenario]:
        outcome = run_program(machine_for("reference", frozenset(), FrameLog()), case.program)
        assert outcome.error is None, outcome.error
        assert case.scenario in outcome.state.reached, (case.name, sorted(outcome.state.reached))


def test_add_keeps_a_fuzz_failure_as_a_case(tmp_path):
    folder = tmp_path / "failure-1"
    folder.mkdir()
    program = "state = StreamMachine_sim_no_dedupe()\nfirst = state.boot(seed=0, chunks=[], context=1)\nstate.teardown()"
    (folder / "trace.json").write_text(json.dumps({
        "program": program, "options": {"mutants": ["no_dedupe"]},
        "invariant": {"invariant": "ordered, gap-free, duplicate-free delivery", "expected": "a", "actual": "b"},
    }))
    case = case_from_failure(folder, "my_found_bug", "4")
    path = write_case(case, tmp_path)
    (loaded,) = load_cases(tmp_path)
    assert loaded == case and path.name == "my_found_bug.json"
    assert "no_dedupe" in loaded.origin and loaded.title == "no ordered, gap-free, duplicate-free delivery violation"
    with pytest.raises(CaseError, match="exists"):
        write_case(case, tmp_path)
    with pytest.raises(CaseError, match="section"):
        write_case(Case(name="bad_section", section="99", title="t", program=program), tmp_path)
    with pytest.raises(CaseError, match="not valid Python"):
        write_case(Case(name="bad_program", section="4", title="t", program="state = ("), tmp_path)


def test_the_corpus_lives_in_the_package():
    assert CASES_DIR.is_dir() and all(p.stem == json.loads(p.read_text())["name"] for p in CASES_DIR.glob("*.json"))
