"""A conformance corpus for servers of the resumable stream protocol (``statemodel conform``).

What Autobahn|Testsuite is for WebSocket, for PROTOCOL.md: a fixed, named set of short,
deterministic programs and attacks, each checking one behaviour of one section, run before
fuzzing. Cases are data (``cases/*.json``, see ``cases.py``); every shrunk fuzz failure can
join them with ``statemodel conform add``.
"""

from statemodel.conform.cases import CASES_DIR, Case, CaseError, case_from_failure, load_cases, write_case
from statemodel.conform.runner import CaseResult, run_case, run_corpus

__all__ = ["CASES_DIR", "Case", "CaseError", "CaseResult", "case_from_failure", "load_cases", "run_case",
           "run_corpus", "write_case"]
