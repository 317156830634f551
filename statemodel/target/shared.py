"""A server shared with clients the machine cannot see: which resets its pressure may explain.

PROTOCOL.md §6 "Pressure" lets a server shed a session that stopped reading while other
sessions wait for its room: one without a connection for ``evict_grace``, or a connected one
that acked nothing for ``stall_after``, cut with 1013. A machine sees only its own sessions,
so against a server that others use too (``statemodel fuzz --workers N`` against one URL,
or a staging server) the pressure is invisible and such a reset read as "reset only when the
protocol allows it". What the client saw still bounds it: a 1013 in the outage (or a
close frame the tester's own faults kept from it), or an outage long enough that the server
may have been without the connection for ``evict_grace``. A reset after a short outage that
no 1013 explains is still a failure.
"""

from __future__ import annotations

import urllib.parse
from collections import deque
from typing import Callable, Sequence

import trio

from statemodel.net import faults as F
from statemodel.stream.config import Config
from statemodel.stream.errors import CloseCode
from statemodel.target.stall import MAX_CREDIT

#: PROTOCOL.md §6's evict_grace (the reference default): what the tester assumes of a server
#: it cannot see. A server with a shorter grace needs ``#expiry_after=SECONDS`` in its URL.
EVICT_GRACE = Config().evict_grace

#: In ``closes``: the connection ended while the tester's own network was removing or holding
#: the server's close frames (DropCloseFrame, DelayCloseFrame towards the client), so a 1013
#: may have been sent and never seen, whatever code the client reported. Not a close code.
WITHHELD = 0


def withholds_server_close(fault: F.Fault) -> bool:
    """Does ``fault`` remove or hold close frames on their way to the client?"""
    return isinstance(fault, (F.DropCloseFrame, F.DelayCloseFrame)) and "s2c" in F.expand(fault.direction)


def notice_lag(client: Config) -> float:
    """How much earlier than the client a server may notice a loss, on a host that runs the
    client when it is ready: the client hears nothing for ``dead_after`` before it gives the
    connection up, then waits ``close_timeout`` for its close to be answered; the server may
    have seen the socket close at once."""
    return client.dead_after + client.close_timeout


def may_have_shed(client: Config, down_for: float, closes: Sequence[int | None],
                  evict_grace: float = EVICT_GRACE) -> bool:
    """May a shared server have shed a session whose client has been without a connection
    for ``down_for`` seconds, its connections in that outage closed with ``closes``?

    Yes after a 1013 (TRY_AGAIN_LATER: §6 cuts a stalled session with it before evicting),
    or after a connection whose close frames the tester's network removed or held
    (``WITHHELD``: the 1013 may be the frame it dropped, or still held when the client gave
    up on dead_after; the server evicted when it sent it). Yes once the outage is long
    enough: the server may have noticed the loss before the client, by up to
    ``notice_lag(client)`` (``down_for`` includes the host's starvation that delayed the
    client's notice: :class:`StarvationLog`)."""
    if CloseCode.TRY_AGAIN_LATER in closes or WITHHELD in closes:
        return True
    return down_for >= evict_grace - notice_lag(client)


class StarvationLog:
    """The host's starvation meter (stall.py) sampled over time, for :meth:`credit`.

    What starvation can matter to a shed the client cannot see (no 1013): §6 sheds a session
    without a connection only ``evict_grace`` after the server lost it, so the question is
    how much earlier than the client the server may have lost it. The client gives a silent
    connection up on its own timers: ``dead_after`` after it last heard the server, then
    ``close_timeout``; trio timers are wall-clock, so starvation *before* the client last
    heard the server delays nothing (the thread was running then), and between then and the
    notice the thread ran for at most ``notice_lag`` (a timer fires at the first moment the
    host runs us after its deadline). Whatever starvation that window holds may have
    delayed the notice, all of it; the window reaches back ``notice_lag`` seconds of the time
    the host let us have, and never before the connection came up (the server cannot have
    lost a connection before it had it). The credit is the starvation inside that window:
    not all starvation since the connection began (on a loaded host a long connection
    gathered far more than the 0.1 s by which ``evict_grace`` exceeds ``notice_lag`` on the
    real-time timers, so any reset after any drop passed), and at most ``MAX_CREDIT``.

    Samples come every ``period`` seconds (:meth:`run`); between two samples the window's
    edge is rounded back to the earlier one, so the credit may exceed the exact one by the
    starvation of one period, never fall short of it. Time the loop is parked between rules
    (Hypothesis drawing the next one) counts as time we had; it is milliseconds a rule.
    """

    def __init__(self, meter: Callable[[], float], period: float = 0.02) -> None:
        self.meter, self.period = meter, period
        self.samples: deque[tuple[float, float]] = deque()  # (trio time, starvation), oldest first

    def note(self, now: float) -> None:
        self.samples.append((now, self.meter()))
        horizon = now - 2 * MAX_CREDIT  # a window holding MAX_CREDIT of starvation, with room for its lag
        while len(self.samples) > 1 and self.samples[1][0] <= horizon:
            self.samples.popleft()

    async def run(self) -> None:
        """Sample every ``period`` until cancelled (a background task on the real clock)."""
        while True:
            self.note(trio.current_time())
            await trio.sleep(self.period)

    def credit(self, now: float, lag: float, since: float) -> float:
        """Starvation that may have delayed a notice at ``now`` by a client whose ``lag`` is
        ``notice_lag``; ``since``: the meter when the connection came up."""
        starved = self.meter()
        edge = since  # no sample far enough back: the whole connection
        for t, s in reversed(self.samples):
            # The host let us have more than ``lag`` since then. A stretch of full starvation at
            # the window's edge could be on either side of it (the time we had does not grow
            # across it): it is taken in (a tolerance over float noise), never left out.
            if (now - t) - (starved - s) > lag + 1e-9:
                edge = max(s, since)
                break
        return min(max(starved - edge, 0.0), MAX_CREDIT)


def shared_url(url: str) -> str:
    """``url`` saying that others use its server too (``#shared=1``), unless its fragment
    already says either way. ``statemodel fuzz --workers N`` marks its target so: the URL
    goes into every reproducer, which then replays with the same allowance. What the user
    wrote is kept byte for byte (the flag is appended, never re-encoded), so an error about
    the URL still quotes it."""
    _, mark, fragment = url.partition("#")
    if any(key == "shared" for key, _ in urllib.parse.parse_qsl(fragment, keep_blank_values=True)):
        return url
    if not mark:
        return f"{url}#shared=1"
    return f"{url}{'' if fragment == '' or fragment.endswith('&') else '&'}shared=1"
