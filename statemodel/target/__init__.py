"""Targets: what the state machine tests. ``make_target(options, seed)`` picks one.

A target owns the network (one of the fault-layer backends) and the server side; it hands
the machine clients that dial through that network. The reference implementation is the
default; ``ws://…`` and ``package.module:factory`` targets test other servers.
"""

from __future__ import annotations

from statemodel.target.base import Target
from statemodel.target.reference import ReferenceTarget


def _unknown(spec: str) -> ValueError:
    return ValueError(
        f"unknown target {spec!r}: use 'reference', a server URL 'ws://host:port/path' "
        f"(with --transport tcp) or an adapter 'package.module:factory'"
    )


def make_target(options, seed: int) -> Target:
    """The target ``options.target`` names: ``reference`` (the embedded reference server on
    any transport: sim, or a real listener behind the loopback fault proxy for tcp/netns),
    ``ws://host:port/path`` / ``wss://…`` (your server, transport tcp) or
    ``package.module:factory`` (your own adapter; docs/TARGETS.md)."""
    spec = options.target
    if spec == "reference":
        if options.transport == "sim":
            return ReferenceTarget(options, seed)
        from statemodel.target.loopback import LoopbackReferenceTarget

        return LoopbackReferenceTarget(options, seed)
    from statemodel.target.external import is_ws_url

    if is_ws_url(spec):
        from statemodel.target.external import ExternalTarget

        return ExternalTarget(options, seed)
    from statemodel.target.factory import FactoryTarget, is_factory_spec

    if is_factory_spec(spec):
        return FactoryTarget(options, seed)
    raise _unknown(spec)


def check_target(options) -> None:
    """Raise the error ``make_target`` would, without I/O and without calling a factory.

    For command lines: a bad ``--target``/``--transport`` pair is a usage error (exit 2)
    before any example runs, not a "failure" of the first example."""
    spec = options.target
    if spec == "reference":
        if options.transport == "netns":
            from statemodel.net.netns import unavailable_reason

            reason = unavailable_reason()
            if reason:
                raise ValueError(f"the reference target on transport 'netns': {reason}")
        return
    from statemodel.target.external import is_ws_url, parse_ws_url

    if is_ws_url(spec):
        parse_ws_url(spec)
        if options.transport != "tcp":
            raise ValueError(f"target {spec!r} is a real server: it needs --transport tcp (got {options.transport!r})")
        return
    from statemodel.target.factory import is_factory_spec, load_factory

    if not is_factory_spec(spec):
        raise _unknown(spec)
    load_factory(spec)


__all__ = ["Target", "ReferenceTarget", "check_target", "make_target"]
