"""Group failures by root cause, so one bug is reported once (with a count), not once per
symptom or per place it was raised.

One bug shows up as many "distinct" failures: Hypothesis tells failures apart by exception
type and the line that raised it, workers and batches find the same bug again, and one bug
breaks several invariants. The 20-minute run of ``--mutant replay_skips_first --seed 5``
reported 10 failures for that one bug; five of them had shrunk to ``boot`` + one
``drop(fault=Abort())`` + a step that exposes it, each under another invariant (lost context,
lost cancel, lost data, a 4002 gap...). So the key is the bug's **trigger**, not its symptom:

- **trigger**: the set of disturbances the shrunk program applies: each rule called with a
  ``fault=`` argument, as ``rule(FaultClass)`` (``drop(Abort)``, ``degrade(Partition)``), and
  the rules that are disturbances by themselves (``outage``, ``restart_server``, ``take_over``,
  ``forge_resume``). Order, repetition, sessions and fault parameters are ignored: shrinking the
  same bug from different starting points ends in those variations.
- A program with no disturbance at all fails in plain operation; those are told apart by
  their **symptom**: the invariant and the where-class (where it broke, every number replaced
  by ``N``: ``session 0 stream 2`` and ``session 1 stream 0`` are one class).

This can merge two bugs with the same trigger; nothing is hidden then: the group keeps every
failure (titles and programs in summary.json and trace.json), led by its shortest program. A
program that could not be shrunk (budget spent) carries incidental disturbances and forms its
own group.
"""

from __future__ import annotations

import re
from typing import Any

DISTURBANCES = frozenset({"outage", "restart_server", "take_over", "forge_resume"})
_CALL = re.compile(r"\bstate\.([A-Za-z_][A-Za-z0-9_]*)\(([^\n]*)")
_FAULT = re.compile(r"\bfault=([A-Za-z_][A-Za-z0-9_]*)\(")
_NUMBER = re.compile(r"\d+")
_NOT_STEPS = ("invariants_hold", "invariants", "teardown")


def trigger(program: str | None) -> tuple[str, ...]:
    """The sorted set of disturbances a printed step program applies (module docstring)."""
    found = set()
    for rule, rest in _CALL.findall(program or ""):
        fault = _FAULT.search(rest)
        if fault:
            found.add(f"{rule}({fault.group(1)})")
        elif rule in DISTURBANCES:
            found.add(rule)
    return tuple(sorted(found))


def program_steps(program: str | None) -> int | None:
    """Rule calls in a printed program (invariant checks and teardown not counted)."""
    if program is None:
        return None
    return sum(1 for rule, _ in _CALL.findall(program) if rule not in _NOT_STEPS)


def where_class(where: str | None) -> str:
    return _NUMBER.sub("N", where or "")


def root_cause(record: dict[str, Any] | None, program: str | None, error_type: str = "") -> tuple:
    """The grouping key of one failure (module docstring)."""
    disturbances = trigger(program)
    if disturbances:
        return ("trigger",) + disturbances
    record = record or {}
    return ("symptom", record.get("invariant") or error_type, where_class(record.get("where")))


def group(failures: list) -> list[list]:
    """Failures (with ``.cause`` and ``.program``) grouped by root cause, in order of first
    appearance; each group starts with its shortest program."""
    groups: dict[tuple, list] = {}
    for f in failures:
        groups.setdefault(f.cause, []).append(f)
    return [sorted(g, key=lambda f: (program_steps(f.program) or 0, len(f.program or ""))) for g in groups.values()]
