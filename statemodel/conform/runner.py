"""Run conformance cases against a target: a fresh machine (or peer) per case, its frames logged.

The target is ``reference`` (the embedded reference server on the sim network, virtual time:
fast, every case can run, mutants can be switched on) or a ``ws://`` URL of a server
speaking PROTOCOL.md with the scripted app (appendix A), reached over loopback through the
fault proxy. A case passes when its program runs to the end with every invariant holding
(the teardown settles and checks that nothing was lost), or when the attack's close code is
the documented one.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

from statemodel.conform.cases import Case
from statemodel.conform.wiretap import FrameLog
from statemodel.machine import MachineOptions, machine_class
from statemodel.report.program import run_program

PASS, FAIL, SKIP, ERROR = "pass", "fail", "skip", "error"
ATTACK_TIMEOUT = 5.0  # seconds each network await of an attack may take


@dataclass
class CaseResult:
    case: Case
    verdict: str
    message: str = ""
    seconds: float = 0.0
    frames: list[dict] = field(default_factory=list)
    frames_dropped: int = 0

    def to_json(self) -> dict:
        c = self.case
        return {"name": c.name, "section": c.section, "title": c.title, "kind": c.kind,
                "scenario": c.scenario, "origin": c.origin, "verdict": self.verdict,
                "message": self.message, "seconds": round(self.seconds, 3),
                "frames": self.frames, "frames_dropped": self.frames_dropped}


def capabilities(target: str) -> set[str]:
    """What the tester can do to this target beyond talking to it (cases.NEEDS)."""
    return {"restart", "server_clock"} if target == "reference" else set()


def machine_for(target: str, mutants: frozenset[str], log: FrameLog) -> type:
    transport = "sim" if target == "reference" else "tcp"
    base = machine_class(MachineOptions(target=target, transport=transport, mutants=mutants))
    return type(base.__name__, (base,), {"wiretap": log, "__module__": base.__module__})


def run_case(case: Case, target: str, mutants: frozenset[str] = frozenset()) -> CaseResult:
    missing = case.needs - capabilities(target)
    if missing:
        return CaseResult(case, SKIP, f"needs what only a server the tester runs itself offers: {', '.join(sorted(missing))}")
    log = FrameLog()
    started = time.monotonic()
    try:
        if case.kind == "program":
            verdict, message = _run_program(case, machine_for(target, mutants, log))
        else:
            verdict, message = _run_attack(case, machine_for(target, mutants, log))
    except Exception as exc:  # noqa: BLE001 - an infrastructure problem of this case, reported as such
        verdict, message = ERROR, f"{type(exc).__name__}: {exc}"
    return CaseResult(case, verdict, message, time.monotonic() - started, log.frames, log.dropped)


def _run_program(case: Case, cls: type) -> tuple[str, str]:
    outcome = run_program(cls, case.program)
    if outcome.error is None:
        return PASS, ""
    if isinstance(outcome.error, AssertionError):
        return FAIL, str(outcome.error)
    return ERROR, "".join(traceback.format_exception_only(outcome.error)).strip()


def _run_attack(case: Case, cls: type) -> tuple[str, str]:
    """The attack, on its own connections, beside an honest session that must not notice."""
    from statemodel.hostile.attacks import AttackContext, Limits, run_attack

    state = cls()
    failure = None
    try:
        state.boot(seed=0, chunks=[{"kind": "text", "seed": 0, "chars": 8}], context=1)
        config = getattr(state.target, "config", None)
        ctx = AttackContext(
            dial=state._rogue_dial, limits=Limits.of(config) if config is not None else Limits(),
            timeout=ATTACK_TIMEOUT, victims=lambda: [h.session_id for h in state.handles if h.session_id],
        )
        verdict = state.run(run_attack, case.attack, ctx)
    except AssertionError as exc:
        failure = exc
    finally:
        try:
            state.teardown()  # the honest session settles: nothing lost
        except AssertionError as exc:
            failure = failure or exc
    if failure is not None:
        return FAIL, f"the honest session beside the attack: {failure}"
    return (PASS, str(verdict)) if verdict.ok else (FAIL, str(verdict))


def run_corpus(cases: list[Case], target: str, mutants: frozenset[str] = frozenset(),
               on_result: Callable[[CaseResult], None] | None = None) -> list[CaseResult]:
    results = []
    for case in cases:
        result = run_case(case, target, mutants)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results
