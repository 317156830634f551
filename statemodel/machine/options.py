"""How one state-machine run is configured: which target, over which transport, with which bugs."""

from __future__ import annotations

from dataclasses import dataclass, field

from statemodel.stream.mutants import MUTANTS

TRANSPORTS = ("sim", "tcp", "netns")


@dataclass(frozen=True)
class MachineOptions:
    target: str = "reference"  # "reference", "ws://host:port/path" or "package.module:factory"
    transport: str = "sim"
    mutants: frozenset[str] = field(default_factory=frozenset)
    record: bool = False

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValueError(f"unknown transport {self.transport!r}; choose one of {', '.join(TRANSPORTS)}")
        object.__setattr__(self, "mutants", frozenset(self.mutants))
        unknown = sorted(m for m in self.mutants if m not in MUTANTS)
        if unknown:  # a typo must not fuzz the correct implementation and pass
            raise ValueError(f"unknown mutant(s) {', '.join(unknown)}; known: {', '.join(sorted(MUTANTS))}")

    def __repr__(self) -> str:  # eval-able, sorted: it is written into reproducers
        mutants = "frozenset(" + repr(sorted(self.mutants)) + ")" if self.mutants else "frozenset()"
        return (
            f"MachineOptions(target={self.target!r}, transport={self.transport!r}, "
            f"mutants={mutants}, record={self.record!r})"
        )

    @property
    def slug(self) -> str:
        """A stable class-name fragment: the example database keys on the machine's class."""
        parts = [self.transport]
        if self.target != "reference":
            parts.append("external")
        parts.extend(sorted(self.mutants))
        return "_".join(p.replace("-", "_") for p in parts)
