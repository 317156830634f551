"""The shrunk step program Hypothesis prints, as data: extract it, parse it, run it.

Hypothesis attaches the program to the failure's ``__notes__`` (``state = M()``, one line
per rule and invariant call, ``state.teardown()``) and, with ``print_blob``, the
``@reproduce_failure`` blob. Running the program statement by statement (teardown always
runs) re-executes the failing case outside Hypothesis, with recording on.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import re
import sys
import traceback
import types
from typing import Any

FAILING_PREFIX = "Failing test case"
PROJECT_PACKAGES = {"statemodel", "strategies"}
BLOB_RE = re.compile(r"@reproduce_failure\((['\"])([^'\"]+)\1,\s*(b(['\"]).*?\4)\)")


class ProgramError(ValueError):
    """The text is not a step program we can run."""


def program_from_notes(notes: list[str]) -> str | None:
    """The printed step program (from ``state = ...`` to ``state.teardown()``), or None."""
    lines: list[str] | None = None
    for note in notes:
        if lines is None:
            if note.startswith(FAILING_PREFIX):
                lines = []
            continue
        lines.append(note)
        if note.strip() == "state.teardown()":
            break
    if not lines or not lines[0].startswith("state = "):
        return None
    return "\n".join(lines)


def blob_from_notes(notes: list[str]) -> tuple[str, str] | None:
    """``(hypothesis_version, blob_literal)`` from the ``@reproduce_failure`` hint, if any."""
    for note in notes:
        m = BLOB_RE.search(note)
        if m:
            return m.group(2), m.group(3)
    return None


def parse_program(text: str) -> tuple[str, list[str]]:
    """Machine class name and the step statements (without the final teardown)."""
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise ProgramError(f"the step program is not valid Python: {exc}") from exc
    stmts = [ast.get_source_segment(text, node) for node in tree.body]
    if not stmts:
        raise ProgramError("the step program is empty")
    first = tree.body[0]
    if not (
        isinstance(first, ast.Assign)
        and len(first.targets) == 1
        and isinstance(first.targets[0], ast.Name)
        and first.targets[0].id == "state"
        and isinstance(first.value, ast.Call)
        and isinstance(first.value.func, ast.Name)
    ):
        raise ProgramError("the step program must start with 'state = MachineName()'")
    body = stmts[1:]
    if body and body[-1].strip() == "state.teardown()":
        body = body[:-1]
    return first.value.func.id, body


@dataclasses.dataclass
class Outcome:
    """What running a program did: the exception (if any) and the machine instance."""

    error: BaseException | None
    traceback: str | None
    state: Any


def program_namespace(cls: type, class_name: str) -> dict[str, Any]:
    """Names the printed program may use (reprs of rule arguments, e.g. fault classes).

    Public names of every module along the class's MRO, plus the public names of project
    modules those import from (``from statemodel.net import faults as F`` makes ``Drop(...)``
    usable); direct names win, and the class is bound to its printed name.
    """
    ns: dict[str, Any] = {}
    direct: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        module = sys.modules.get(klass.__module__) or importlib.import_module(klass.__module__)
        for k, v in vars(module).items():
            if k.startswith("_"):
                continue
            direct[k] = v
            if isinstance(v, types.ModuleType):
                source = v
            else:  # e.g. `from statemodel.strategies.payloads import chunk_specs`: its module's types too
                source = sys.modules.get(getattr(v, "__module__", None) or "")
            if source is not None and source.__name__.split(".")[0] in PROJECT_PACKAGES:
                names = getattr(source, "__all__", None) or [n for n in vars(source) if not n.startswith("_")]
                for n in names:
                    if hasattr(source, n):
                        ns[n] = getattr(source, n)
    ns.update(direct)
    ns[class_name] = cls
    return ns


def run_program(cls: type, text: str) -> Outcome:
    """Execute the program against ``cls``; teardown runs even when a step fails."""
    class_name, body = parse_program(text)
    ns = program_namespace(cls, class_name)
    state = cls()
    ns["state"] = state
    error = tb = None
    try:
        for stmt in body:
            exec(compile(stmt, "<step program>", "exec"), ns)
    except Exception as exc:  # the failure we are reproducing
        error, tb = exc, traceback.format_exc()
    finally:
        try:
            state.teardown()
        except Exception as exc:
            if error is None:
                error, tb = exc, traceback.format_exc()
    return Outcome(error, tb, state)


def error_summary(exc: BaseException) -> tuple[str, str]:
    """(type name, first line of the message) — how failures are compared."""
    msg = str(exc).strip().splitlines()
    return type(exc).__name__, (msg[0] if msg else "")
