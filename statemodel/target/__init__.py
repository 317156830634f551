"""Targets: what the state machine tests. ``make_target(options, seed)`` picks one.

A target owns the network (one of the fault-layer backends) and the server side; it hands
the machine clients that dial through that network. The reference implementation is the
default; ``ws://…`` and ``package.module:factory`` targets test other servers.
"""

from __future__ import annotations

from statemodel.target.base import Target
from statemodel.target.reference import ReferenceTarget


def make_target(options, seed: int) -> Target:
    """The target ``options.target`` names: ``reference`` (the embedded reference server, sim
    transport), ``ws://host:port/path`` / ``wss://…`` (your server, transport tcp) or
    ``package.module:factory`` (your own adapter; docs/TARGETS.md)."""
    spec = options.target
    if spec == "reference":
        return ReferenceTarget(options, seed)
    if spec.startswith(("ws://", "wss://")):
        from statemodel.target.external import ExternalTarget

        return ExternalTarget(options, seed)
    from statemodel.target.factory import FactoryTarget, is_factory_spec

    if is_factory_spec(spec):
        return FactoryTarget(options, seed)
    raise ValueError(
        f"unknown target {spec!r}: use 'reference', a server URL 'ws://host:port/path' "
        f"(with --transport tcp) or an adapter 'package.module:factory'"
    )


__all__ = ["Target", "ReferenceTarget", "make_target"]
