"""The world's turn after a rule, on the real clock: a fixed slice that ends early once
nothing can move.

After every rule the machine lets the world run ``STEP`` (7 ms) so that the rule's request
has arrived and its answer is in flight when the next rule comes (a drop then lands on it).
On the real clock those 7 ms are paid for even when the rule put nothing on the wire (a
fault, a heal with nothing held, a paused consumer, an offline command): about half of a
tcp fuzz run's rules, 15-20% of its wall time. Here the slice ends as soon as the run is
idle -- every task blocked for a cushion of time (``trio.testing.wait_all_tasks_blocked``:
no task runnable, no socket ready, no deadline due) -- and the target reports nothing in
flight (bytes the proxy holds for later delivery). A rule whose answer is still on its way
keeps the whole slice, as before: nothing that could arrive is cut short.
"""

from __future__ import annotations

from typing import Callable

import trio
import trio.testing

# Seconds every task must stay blocked before the run counts as idle. Loopback delivers in
# microseconds and the reference server runs in this run, so its answer would be a ready
# socket well within it; a server in another process that answers later finds the next rule
# already under way, as a slow server would anyway.
CUSHION = 0.001


async def quiet_or(bound: float, in_flight: Callable[[], bool], cushion: float = CUSHION) -> bool:
    """Return once the run is idle and ``in_flight()`` is False (True), or after ``bound``
    seconds (False)."""
    with trio.move_on_after(bound):
        while True:
            await trio.testing.wait_all_tasks_blocked(cushion)
            if not in_flight():
                return True
            await trio.sleep(cushion)  # a delivery is due later: look again once it may have come
    return False
