"""The conformance corpus as data: one JSON file per case in ``statemodel/conform/cases/``.

A case checks one behaviour PROTOCOL.md states, named by its section. Two kinds:

- ``program``: a short step program of the state machine, in the form Hypothesis prints a
  shrunk failure (``state = StreamMachine_sim()`` ... ``state.teardown()``); it passes when
  it runs to the end with every invariant holding. Kept shrunk programs and every
  ``statemodel fuzz`` failure can be added as they are (``statemodel conform add``).
- ``attack``: one of the hostile peer's attacks (``statemodel.hostile.attacks``) whose
  expected close code PROTOCOL.md §10 documents.

Programs that restart the server or need the server's own clocks and state (virtual time)
are skipped against a server the tester does not run itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from statemodel.report.program import ProgramError, parse_program

CASES_DIR = Path(__file__).with_name("cases")
NAME = re.compile(r"^[a-z0-9][a-z0-9_]{2,79}$")
SECTION = re.compile(r"^(\d+[a-z]?(\.\d+)?|A|B)$")
#: PROTOCOL.md's top-level sections (a case may name a numbered item inside one: "7.3").
SECTIONS = {str(n) for n in range(1, 13)} | {"8a", "A", "B"}
KINDS = ("program", "attack")

#: What a program needs from the target, by the rules it calls.
NEEDS = {
    "restart": ("restart_server(", "restart_during_resume("),
    "server_clock": ("expire_edge(",),  # the server's deadlines, probed on virtual time
}
#: ``requires`` a case may state: "server_clock" (more virtual time than a real run can spend).


class CaseError(ValueError):
    """A case file that cannot be run (named, with the reason)."""


@dataclass(frozen=True)
class Case:
    name: str
    section: str  # PROTOCOL.md section the case checks ("7.3", "8a", "A")
    title: str  # the behaviour checked, in the spec's words
    kind: str = "program"
    program: str | None = None  # kind "program": the printed step program
    attack: str | None = None  # kind "attack": a name in statemodel.hostile.attacks.ATTACKS
    scenario: str | None = None  # the scenario class it reaches on purpose (machine/coverage.py)
    origin: str = ""  # where it came from: a kept shrunk program, a fuzz failure, written for the corpus
    story: str = ""  # what went wrong when it was found, if it was
    tags: tuple[str, ...] = field(default_factory=tuple)
    requires: tuple[str, ...] = field(default_factory=tuple)  # needs the rules alone do not show

    @property
    def needs(self) -> set[str]:
        """What the case needs from the target beyond talking to it (see ``NEEDS``)."""
        text = self.program or ""
        return set(self.requires) | {need for need, calls in NEEDS.items() if any(c in text for c in calls)}

    def to_json(self) -> dict:
        data = {k: v for k, v in asdict(self).items() if v not in (None, "", ())}
        data["tags"] = list(self.tags)
        if self.requires:
            data["requires"] = list(self.requires)
        return data

    def sort_key(self) -> tuple:
        parts = re.findall(r"\d+|[a-zA-Z]+", self.section)
        return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts), self.name


def validate(case: Case) -> Case:
    if not NAME.match(case.name):
        raise CaseError(f"case name {case.name!r}: use 3-80 lowercase letters, digits and '_'")
    if not SECTION.match(case.section) or case.section.split(".")[0] not in SECTIONS:
        raise CaseError(f"case {case.name}: section {case.section!r} is not a PROTOCOL.md section (e.g. 7.3, 8a, A)")
    unknown = set(case.requires) - set(NEEDS)
    if unknown:
        raise CaseError(f"case {case.name}: unknown requires {sorted(unknown)}; known: {sorted(NEEDS)}")
    if case.kind not in KINDS:
        raise CaseError(f"case {case.name}: kind must be one of {KINDS}, got {case.kind!r}")
    if case.kind == "program":
        if not case.program:
            raise CaseError(f"case {case.name}: a program case needs a 'program'")
        try:
            parse_program(case.program)
        except ProgramError as exc:
            raise CaseError(f"case {case.name}: {exc}") from None
    else:
        from statemodel.hostile.attacks import ATTACKS

        if case.attack not in ATTACKS:
            raise CaseError(f"case {case.name}: unknown attack {case.attack!r}; known: {', '.join(sorted(ATTACKS))}")
    return case


def from_json(data: dict) -> Case:
    try:
        data = dict(data)
        data["tags"] = tuple(data.get("tags", ()))
        data["requires"] = tuple(data.get("requires", ()))
        return validate(Case(**data))
    except TypeError as exc:
        raise CaseError(f"case {data.get('name', '?')}: {exc}") from None


def load_cases(directory: Path = CASES_DIR, names: list[str] | None = None) -> list[Case]:
    """Every case in ``directory`` (or the named ones), in section order."""
    cases = []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            case = from_json(json.loads(path.read_text()))
        except (ValueError, OSError) as exc:
            raise CaseError(f"{path}: {exc}") from None
        if case.name != path.stem:
            raise CaseError(f"{path}: the file name must be the case name {case.name!r}")
        cases.append(case)
    if names:
        known = {c.name for c in cases}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise CaseError(f"unknown case(s) {', '.join(unknown)}; `statemodel conform --list` lists them")
        cases = [c for c in cases if c.name in names]
    return sorted(cases, key=Case.sort_key)


def write_case(case: Case, directory: Path = CASES_DIR, *, replace: bool = False) -> Path:
    validate(case)
    path = Path(directory) / f"{case.name}.json"
    if path.exists() and not replace:
        raise CaseError(f"{path} exists; pick another --name (or --replace)")
    path.write_text(json.dumps(case.to_json(), indent=2, ensure_ascii=False) + "\n")
    return path


def case_from_failure(folder: Path, name: str, section: str, title: str | None = None) -> Case:
    """A case from a ``statemodel fuzz --report`` failure folder (its trace.json)."""
    trace_path = Path(folder) / "trace.json"
    try:
        trace = json.loads(trace_path.read_text())
    except (OSError, ValueError) as exc:
        raise CaseError(f"cannot read {trace_path}: {exc} (give a failure folder of "
                        f"`statemodel fuzz --report DIR`, e.g. DIR/failure-1)") from None
    program = trace.get("program")
    if not program:
        raise CaseError(f"{trace_path} holds no step program to keep")
    invariant = trace.get("invariant") or {}
    error = trace.get("error") or {}
    found = f"{invariant.get('invariant', error.get('type', 'failure'))}"
    mutants = (trace.get("options") or {}).get("mutants") or []
    story = f"{found}: expected {invariant.get('expected')}; got {invariant.get('actual')}" if invariant else \
        f"{error.get('type')}: {error.get('message')}"
    return validate(Case(
        name=name, section=section, title=title or f"no {found} violation",
        program=program, origin=f"statemodel fuzz failure {Path(folder).name}"
        + (f" (mutants {', '.join(mutants)})" if mutants else ""),
        story=story,
    ))
