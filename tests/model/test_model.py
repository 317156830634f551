"""The reference model catches each violation it is responsible for, and accepts correct runs."""

import pytest
from hypothesis import given, strategies as st

from statemodel.model import InvariantViolation, Model
from statemodel.model.status import StatusChecker


def expand(command):
    if command["op"] == "echo":
        return [command["data"]]
    return list(command["chunks"])


def model_with_stream(chunks=("a", "b", "c")):
    m = Model(expand)
    s = m.new_session()
    key = m.open_stream(s, {"op": "emit", "chunks": list(chunks)})
    return m, s, key


def test_in_order_delivery_and_end_pass():
    m, s, key = model_with_stream()
    m.command(key, {"op": "end"})
    for c in "abc":
        m.chunk(key, c)
    m.terminal(key, "end")
    m.check_quiescent({})


def test_duplicate_is_named():
    m, _, key = model_with_stream()
    m.chunk(key, "a")
    with pytest.raises(InvariantViolation, match="duplicate of chunk #0"):
        m.chunk(key, "a")


def test_gap_is_named():
    m, _, key = model_with_stream()
    with pytest.raises(InvariantViolation, match=r"chunk #2 \(chunks #0..#1 skipped\)"):
        m.chunk(key, "c")


def test_content_never_sent():
    m, _, key = model_with_stream()
    with pytest.raises(InvariantViolation, match="never sent"):
        m.chunk(key, "zzz")


def test_loss_at_quiescence():
    m, _, key = model_with_stream()
    m.chunk(key, "a")
    with pytest.raises(InvariantViolation, match="no loss at quiescence"):
        m.check_quiescent({})


def test_end_before_all_chunks_is_loss():
    m, _, key = model_with_stream()
    m.command(key, {"op": "end"})
    m.chunk(key, "a")
    with pytest.raises(InvariantViolation, match="no loss before the end"):
        m.terminal(key, "end")


def test_error_reason_must_match():
    m, _, key = model_with_stream(())
    m.command(key, {"op": "fail", "reason": "boom"})
    with pytest.raises(InvariantViolation, match="sequenced end and errors"):
        m.terminal(key, "error", "other")


def test_reset_without_cause_is_silent_loss_announced_wrongly():
    m, _, key = model_with_stream()
    with pytest.raises(InvariantViolation, match="reset only when the protocol allows it"):
        m.terminal(key, "reset", "unknown_session")


def test_reset_after_restart_is_allowed_and_excused_at_quiescence():
    m, s, key = model_with_stream()
    m.server_restarted()
    m.terminal(key, "reset", "epoch_changed")
    m.reset_reported(s, "epoch_changed", replaced_by=1)
    m.check_quiescent({s: {}})


def test_session_reset_clears_permission():
    m, s, key = model_with_stream()
    m.server_restarted()
    m.reset_reported(s, "epoch_changed", replaced_by=1)
    key2 = m.open_stream(s, {"op": "emit", "chunks": ["x"]})
    with pytest.raises(InvariantViolation, match="reset only"):
        m.terminal(key2, "reset", "epoch_changed")


def test_a_late_reset_report_does_not_use_up_a_later_restart():
    """Two restarts; the first reset is processed after the second restart was counted."""
    m, s, key = model_with_stream(())
    m.server_restarted()
    m.server_restarted()
    m.reset_reported(s, "epoch_changed", replaced_by=1)  # the session made on server 1
    m.reset_reported(s, "epoch_changed", replaced_by=2)  # then server 2 replaced it: allowed


def test_a_session_replaced_while_reporting_recovered_is_silent_loss():
    m, s, _ = model_with_stream(())
    with pytest.raises(InvariantViolation, match="reset only"):
        m.session_replaced_silently(s, None)


def test_expiry_permits_eviction_resets_without_replacing_the_session():
    m, s, key = model_with_stream()
    m.session_expired(s)
    m.reset_reported(s, "replay_evicted", replaced_by=None)
    m.terminal(key, "reset", "replay_evicted")


def test_context_set_before_a_cancel_may_or_may_not_have_run():
    m, s, key = model_with_stream(())
    m.command(key, {"op": "set_context", "key": "k1", "value": 5})
    m.cancel(key)
    assert m.context_settled(s, {}) and m.context_settled(s, {"k1": 5})
    assert not m.context_settled(s, {"k1": 6})
    m.check_context(s, {"k1": 5})


def test_context_must_match():
    m, s, key = model_with_stream(())
    m.command(key, {"op": "set_context", "key": "k0", "value": 1})
    m.check_context(s, {"k0": 1})
    with pytest.raises(InvariantViolation, match="session context preserved"):
        m.check_context(s, {"k0": 2})
    with pytest.raises(InvariantViolation, match="session context preserved"):
        m.check_quiescent({s: {}})


def test_chunk_after_end():
    m, _, key = model_with_stream(("a",))
    m.command(key, {"op": "end"})
    m.chunk(key, "a")
    m.terminal(key, "end")
    with pytest.raises(InvariantViolation, match="nothing after the end"):
        m.chunk(key, "a")


def test_status_grammar_accepts_a_resume_cycle():
    c = StatusChecker()
    for e in [("connected",), ("disconnected", "abort"), ("reconnecting", 1), ("disconnected", "timeout"),
              ("reconnecting", 2),
              ("connected",), ("resumed", "recovered", None), ("disconnected", "x"), ("reconnecting", 1),
              ("disconnected", "refused"), ("reconnecting", 2), ("connected",), ("resumed", "reset", "epoch_changed")]:
        c.feed(e, "s0")
    assert c.connected


def test_status_first_connection_may_fail_and_then_is_not_a_resume():
    c = StatusChecker()
    for e in [("disconnected", "refused"), ("reconnecting", 1), ("connected",)]:
        c.feed(e, "s0")
    assert c.connected
    with pytest.raises(InvariantViolation, match="valid status sequence"):
        c.feed(("resumed", "recovered", None), "s0")


@pytest.mark.parametrize(
    "events",
    [
        [("resumed", "recovered", None)],
        [("connected",), ("connected",)],
        [("connected",), ("disconnected", "x"), ("reconnecting", 2)],
        [("connected",), ("disconnected", "x"), ("reconnecting", 1), ("connected",), ("resumed", "maybe", None)],
        [("connected",), ("disconnected", "x"), ("reconnecting", 1), ("connected",), ("disconnected", "y"),
         ("reconnecting", 2)],
    ],
)
def test_status_grammar_rejects(events):
    c = StatusChecker()
    with pytest.raises(InvariantViolation, match="valid status sequence"):
        for e in events:
            c.feed(e, "s0")


def test_stream_of_an_earlier_session_incarnation_may_report_reset_late():
    m, s, key = model_with_stream()
    m.server_restarted()
    m.reset_reported(s, "epoch_changed", replaced_by=1)  # the status event arrived first
    m.terminal(key, "reset", "epoch_changed")  # then the paused consumer read its reset


def test_a_cancel_that_never_takes_effect_is_caught_at_quiescence():
    m, _, key = model_with_stream(())
    m.cancel(key)
    with pytest.raises(InvariantViolation, match="cancellation survives resume"):
        m.check_quiescent({})
    m.terminal(key, "error", "cancelled")
    m.check_quiescent({})


def test_server_side_context_is_checked_too():
    m, s, key = model_with_stream(())
    m.command(key, {"op": "set_context", "key": "k1", "value": 1})
    with pytest.raises(InvariantViolation, match=r"server side"):
        m.check_quiescent({s: {"k1": 1}}, {s: {}})


def test_context_set_on_a_stream_later_reset_may_be_missing():
    m, s, key = model_with_stream(())
    m.command(key, {"op": "set_context", "key": "k1", "value": 5})
    m.session_expired(s)
    m.terminal(key, "reset", "replay_evicted")
    m.check_quiescent({s: {}})


def test_recovered_with_lost_streams_is_caught_and_plain_recovered_passes():
    m, s, key = model_with_stream()
    m.recovered_reported(s, ())
    with pytest.raises(InvariantViolation, match="recovered only when nothing was lost.*streams \\[1\\]"):
        m.recovered_reported(s, (1,))


def test_undelivered_since_names_items_old_enough_to_have_aged_out():
    """Eviction by age needs an item asked for long enough ago that the client never got:
    the oldest undelivered chunk, or a terminal item once every chunk is in."""
    m = Model(expand)
    s = m.new_session()
    key = m.open_stream(s, {"op": "emit", "chunks": ["a", "b"]}, at=1.0)
    m.command(key, {"op": "emit", "chunks": ["c"]}, at=5.0)
    assert m.undelivered_since(s, before=1.0) and not m.undelivered_since(s, before=0.5)
    m.chunk(key, "a")
    m.chunk(key, "b")
    assert not m.undelivered_since(s, before=4.0) and m.undelivered_since(s, before=5.0)
    m.chunk(key, "c")
    assert not m.undelivered_since(s, before=100.0)  # everything delivered: nothing to evict
    m.command(key, {"op": "end"}, at=7.0)
    assert m.undelivered_since(s, before=7.0) and not m.undelivered_since(s, before=6.0)
    m.terminal(key, "end")
    assert not m.undelivered_since(s, before=100.0)


# ---- resume outcomes, judged directly (issue 15) -------------------------------------------
def test_recovered_under_another_epoch_names_the_resume():
    m, s, _ = model_with_stream()
    m.recovered_reported(s, (), "resume #1", epochs=("e1", "e1"), served_by=0)  # same epoch: fine
    with pytest.raises(InvariantViolation, match=r"own server epoch violated at session 0 resume #2.*'e2'.*'e1'"):
        m.recovered_reported(s, (), "resume #2", epochs=("e1", "e2"))


def test_recovered_from_a_server_that_did_not_create_the_session():
    m, s, _ = model_with_stream()
    m.session_started(s, 0)
    m.server_restarted()
    with pytest.raises(InvariantViolation, match="incarnation 0 created the session, incarnation 1"):
        m.recovered_reported(s, (), "resume #1", served_by=1)


def test_recovered_with_lost_streams_names_them():
    m, s, _ = model_with_stream()
    with pytest.raises(InvariantViolation, match=r"recovered only when nothing was lost.*\[3\]"):
        m.recovered_reported(s, (3,), "resume #1")


def test_a_stream_reported_lost_must_be_reset_by_the_client():
    m, s, key = model_with_stream()
    m.session_expired(s)
    m.reset_reported(s, "replay_evicted", None, "resume #1 at t=25.000", lost=(key,))
    with pytest.raises(InvariantViolation, match=r"every stream a resume reports lost is reset.*resume #1 at t=25.000"):
        m.check_quiescent({})
    m.terminal(key, "reset", "replay_evicted")
    m.check_quiescent({})


def test_the_client_keeping_a_lost_stream_open_is_named_at_once():
    m, s, key = model_with_stream()
    m.lost_not_reset(s, {}, "resume #1")  # nothing left open: fine
    with pytest.raises(InvariantViolation, match=r"resume #1.*still treats stream ids \[3\] as open"):
        m.lost_not_reset(s, {3: key}, "resume #1")


def test_a_replaced_session_resets_every_stream_it_had():
    m, s, key = model_with_stream()
    m.server_restarted()
    m.reset_reported(s, "epoch_changed", 1, "resume #1")
    with pytest.raises(InvariantViolation, match="reset, since resume #1 \\(reset, epoch_changed\\) ended it"):
        m.check_quiescent({})


# ---- context the client sets itself ----------------------------------------------------------
def test_client_context_must_reach_both_copies():
    m, s, _ = model_with_stream(chunks=())
    m.client_context(s, "c1", 5)
    m.check_context(s, {"c1": 5})
    with pytest.raises(InvariantViolation, match=r"session context preserved violated at session 0 \(server side\)"):
        m.check_quiescent({s: {"c1": 5}}, {s: {}})
    m.check_quiescent({s: {"c1": 5}}, {s: {"c1": 5}})


def test_client_context_set_in_an_unreported_replacement_survives_its_reset():
    m, s, _ = model_with_stream(chunks=())
    m.client_context(s, "c1", 1)
    m.server_restarted()
    m.client_context(s, "c2", 2, pending=True)  # the client already holds the new session
    m.check_context(s, {"c2": 2})
    m.reset_reported(s, "epoch_changed", 1)
    assert m.sessions[s].context == {"c2": 2}
    with pytest.raises(InvariantViolation, match="session context preserved"):
        m.check_context(s, {"c1": 1})


@given(st.lists(st.lists(st.one_of(st.text(st.characters(codec="utf-8")), st.binary(),
                                   st.integers(0, 3000).map(lambda n: "é😀a"[n % 3] * n)), max_size=4), max_size=6))
def test_largest_chunk_is_the_largest_utf8_size(commands):
    """largest_chunk skips encoding texts that cannot be the largest (a fast path): it is
    still exactly the largest chunk's size in bytes, texts counted in UTF-8; the free
    ``largest.floor`` the invariants read first is a lower bound of it all along."""
    m = Model(expand)
    key = m.open_stream(m.new_session(), {"op": "emit", "chunks": []})
    sizes = [0]
    for chunks in commands:
        m.command(key, {"op": "emit", "chunks": chunks})
        sizes.extend(len(c.encode()) if isinstance(c, str) else len(c) for c in chunks)
        assert m.largest.floor <= max(sizes)
    assert m.largest_chunk == max(sizes)
    assert m.largest.floor == m.largest_chunk  # once sized, the bound is the figure
