"""Scenario classes: the situations resumable-stream bugs live in, and how often a run reached each.

A class counts as reached in an example when the machine saw the world actually in it
(a drop with two client items unacknowledged, a replay that interleaved streams, ...), not
when a rule merely meant to get there. The machine reports each with Hypothesis ``event()``
(``--hypothesis-show-statistics``) and as a ``scenario`` event in the recording, which the
fuzz collector counts per example; ``coverage_table`` turns those counts into the table
``statemodel fuzz`` prints and writes to summary.json.
"""

from __future__ import annotations

#: name -> what the machine observed. Order is the table's order.
SCENARIOS: dict[str, str] = {
    "unacked_ge2_at_drop": "a connection dropped with >= 2 client items unacknowledged",
    "retransmit_non_last": "a resume retransmitted an item that was not the last one sent on its stream",
    "context_changed_offline": "session context changed while the client was offline (set offline, or ctx replayed)",
    "replay_interleaves_streams": "one resume replayed items of >= 2 streams, interleaved",
    "drop_inside_fragments": "a connection dropped in the middle of a multi-fragment message",
    "size_at_fragment_multiple": "a message of exactly k x fragment_size bytes, or one byte either side",
    "replay_buffer_full": "a producer found its replay buffer at its bound and waited",
    "expiry_boundary": "a resume reached the server within one tick of the session's expiry or an eviction",
    "resume_races_restart": "the server restarted while a client's resume was in flight",
    "fencing_during_replay": "a newer connection fenced the client's connection while its replay was unacknowledged",
    "cancel_while_offline": "a stream was cancelled while the client was offline",
    "older_item_to_client": "an item older than the client's last received one was re-delivered to it",
    "older_item_to_server": "an item older than the server's last received one was re-delivered to it",
    "client_context_online": "the client set session context on a live connection",
    "client_context_offline": "the client set session context with no live connection",
}

#: Below this share of a run's examples a class counts as a blind spot (issue 15: 1% of a
#: default 2,000-example run is a bug of the generators).
RARE = 0.01


def coverage_table(counts: dict[str, int], examples: int) -> list[dict]:
    """One row per scenario class, in ``SCENARIOS`` order: name, what it means, how many
    examples reached it, their share of ``examples`` and whether that is below ``RARE``.
    Classes a run never reached are rows with 0, so a blind spot is visible, not absent."""
    rows = []
    for name, meaning in SCENARIOS.items():
        n = int(counts.get(name, 0))
        share = n / examples if examples else 0.0
        rows.append({"scenario": name, "meaning": meaning, "examples": n,
                     "share": round(share, 4), "rare": examples > 0 and share < RARE})
    return rows


def format_table(counts: dict[str, int], examples: int) -> str:
    """The table as plain text lines (for the fuzz summary and BENCHMARKS.md)."""
    rows = coverage_table(counts, examples)
    width = max(len(r["scenario"]) for r in rows)
    lines = [f"scenario coverage ({examples} examples; < {RARE:.0%} marked rare):"]
    for r in rows:
        mark = "  RARE" if r["rare"] else ""
        lines.append(f"  {r['scenario']:<{width}}  {r['examples']:>6}  {r['share']:>7.2%}{mark}")
    return "\n".join(lines)
