"""Targets: what the state machine tests. ``make_target(options, seed)`` picks one.

A target owns the network (one of the fault-layer backends) and the server side; it hands
the machine clients that dial through that network. The reference implementation is the
default; ``ws://…`` and ``package.module:factory`` targets test other servers.
"""

from __future__ import annotations

from statemodel.target.base import Target
from statemodel.target.reference import ReferenceTarget


def make_target(options, seed: int) -> Target:
    if options.target == "reference":
        return ReferenceTarget(options, seed)
    raise ValueError(
        f"target {options.target!r} is not supported yet: use 'reference'"
    )


__all__ = ["Target", "ReferenceTarget", "make_target"]
