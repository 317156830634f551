"""Whose fault an exception is: the target's (a failure, to hunt in the server) or the tester's
own (an error: Hypothesis or statemodel itself broke, and nothing in the server needs fixing).

Anything a run raises without naming an invariant used to be filed under "no unhandled
exception", as the target's. Beside two CPU spinners a tcp run so reported Hypothesis' own
"Inconsistent data generation" (``FlakyStrategyDefinition`` from its ``datatree.py``) as
"invariant no unhandled exception violated at datatree.py:split_at": a user would hunt a bug
in their server that is not there. The tester's own are:

- Hypothesis' errors (``hypothesis.errors``: flaky strategy definitions, invalid arguments or
  state, health checks...), but not ``FlakyFailure`` (a group holding the *target's* failures
  Hypothesis could not replay) nor ``DeadlineExceeded`` (an example that was slow);
- anything else raised inside Hypothesis, or inside statemodel's machine side (the machine,
  model, bridge, fuzz runner, strategies, recorder), except an assertion: an
  ``InvariantViolation`` or a machine's plain ``assert`` is a check that failed, a finding.

Raised in the reference implementation (``statemodel/stream``), the network and target
adapters, trio, trio-websocket or a user's own machine: the target's, as before.
"""

from __future__ import annotations

import os
import traceback

DETAIL_CHARS = 400  # of a Hypothesis error's detail lines, kept in its one-line message
REPORT = "report it to the statemodel maintainers with the seed, the command and this message"
ADVICE = {
    "Hypothesis": ("Nothing in the target needs fixing for it. Run the same command again (same "
                   f"--seed) to see whether it recurs, and {REPORT}."),
    # raised in statemodel's own code: its bug, though an answer it did not expect may have set it off
    "statemodel": (f"A bug of statemodel's: {REPORT}. A target answering in a way statemodel did not "
                   "expect may have set it off: replay with the same --seed and read what it sent last."),
}

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
# statemodel's machine side, relative to the package: raising here is the tester's own error.
_TESTER = ("machine", "model", "fuzz", "strategies", "report", "bridge.py", "record.py", "timers.py",
           "pareto.py", "literals.py", "profiles.py", "blame.py")


class TesterError(Exception):
    """The tester's own error, found where the target's would be (a logged traceback, say)."""

    __test__ = False  # not a test class, whatever pytest makes of its name

    def __init__(self, message: str, whose: str = "statemodel") -> None:
        super().__init__(message)
        self.whose = whose


def leaf(exc: BaseException) -> BaseException:
    """A group of one, as the one it holds (not a FlakyFailure: its members are the target's)."""
    from hypothesis.errors import FlakyFailure

    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1 and not isinstance(exc, FlakyFailure):
        exc = exc.exceptions[0]
    return exc


def _innermost_file(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ is not None else []
    return os.path.abspath(frames[-1].filename) if frames else ""


def _in_tester_code(path: str) -> bool:
    if not path.startswith(_PACKAGE + os.sep):
        return False
    return os.path.relpath(path, _PACKAGE).split(os.sep)[0] in _TESTER


def tester_fault(exc: BaseException) -> str | None:
    """Whose, if the tester's: "Hypothesis" or "statemodel"; None when it is the target's."""
    import hypothesis
    from hypothesis.errors import DeadlineExceeded, FlakyFailure, HypothesisException

    exc = leaf(exc)
    if isinstance(exc, TesterError):
        return exc.whose
    if isinstance(exc, (FlakyFailure, DeadlineExceeded)):
        return None
    if isinstance(exc, HypothesisException):
        return "Hypothesis"
    path = _innermost_file(exc)
    if path.startswith(os.path.dirname(os.path.abspath(hypothesis.__file__)) + os.sep):
        return "Hypothesis"
    if isinstance(exc, AssertionError) or type(exc).__name__ == "JobTimeout":
        return None  # a check that failed; a world that never finished (a hang may be the target's)
    return "statemodel" if _in_tester_code(path) else None


def possessive(whose: str) -> str:
    return whose + ("'" if whose.endswith("s") else "'s")


def where(exc: BaseException) -> str:
    """``file.py:function`` of the innermost frame (the type's name if it has none)."""
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ is not None else []
    return f"{os.path.basename(frames[-1].filename)}:{frames[-1].name}" if frames else type(exc).__name__


def tester_message(exc: BaseException, why: str = "") -> str:
    """One line for the summary's errors: what broke, that it is not the target, what to do."""
    from hypothesis.errors import HypothesisException

    exc = leaf(exc)
    if isinstance(exc, TesterError):
        return str(exc)  # said so where it was found
    lines = str(exc).strip().splitlines()
    what = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    detail = " ".join(line.strip() for line in lines[1:] if line.strip())
    if detail and isinstance(exc, HypothesisException):  # what differed, say ("forced to 3 ...")
        what += f" [{detail if len(detail) <= DETAIL_CHARS else detail[:DETAIL_CHARS] + '...'}]"
    return (f"tester error, not a failure of the target: {possessive(tester_fault(exc) or 'the tester')} "
            f"own {what} (at {where(exc)}){': ' + why if why else ''}. "
            f"{ADVICE.get(tester_fault(exc) or '', ADVICE['statemodel'])}")
