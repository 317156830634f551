"""Programs that once failed over real sockets with no bug in the server (false failures).

Each runs the real machine, as Hypothesis printed it, against the reference server reached
over loopback: through ``statemodel serve --app script`` at a ws:// URL, and as the
reference target on ``--transport tcp``.
"""

from __future__ import annotations

import pytest

from statemodel.machine import MachineOptions, machine_class
from statemodel.net.faults import Partition


@pytest.fixture(params=["ws", "reference"])
def real_options(request, script_server_url) -> MachineOptions:
    target = script_server_url if request.param == "ws" else "reference"
    return MachineOptions(target=target, transport="tcp")


def test_forged_resume_during_a_partition_is_not_the_servers_failure(real_options) -> None:
    """Issue 15.3: with a network-wide Partition in force, the rogue peer dialled through the
    fault proxy, stalled like every new connection, and ``dial()`` raised
    ``trio.TooSlowError`` after ``connect_timeout``: reported as the server's failure. A rogue
    is not on the client's path; it dials around the client's faults."""
    state = machine_class(real_options)()
    try:
        state.boot(seed=11598, chunks=[], context=-7)
        state.invariants_hold()
        state.degrade(fault=Partition())
        state.invariants_hold()
        state.forge_resume(session=0)
        state.invariants_hold()
        assert state.target.net.partitioned()  # the rogue got through the partition's time
    finally:
        state.teardown()
