"""Example factories for ``--target package.module:factory`` (docs/TARGETS.md).

``small_buffers`` is the reference server on the sim with tiny fragments and replay buffers:
the same protocol under much more fragmentation and backpressure. Copy it as a starting
point for your own factory.
"""

from __future__ import annotations

from dataclasses import replace

from statemodel.target.reference import ReferenceTarget

SMALL_BUFFERS = dict(
    fragment_size=4 * 1024,
    replay_max_bytes=64 * 1024,
    replay_max_count=64,
    server_max_buffered_bytes=256 * 1024,
)


def small_buffers(options, seed: int) -> ReferenceTarget:
    """The reference target with 4 KiB fragments and 64 KiB / 64-item replay buffers."""
    target = ReferenceTarget(options, seed)
    target.config = replace(target.config, **SMALL_BUFFERS)  # read when the server starts
    return target
