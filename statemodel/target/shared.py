"""A server shared with clients the machine cannot see: which resets its pressure may explain.

PROTOCOL.md §6 "Pressure" lets a server shed a session that stopped reading while other
sessions wait for its room: one without a connection for ``evict_grace``, or a connected one
that acked nothing for ``stall_after``, cut with 1013. A machine sees only its own sessions,
so against a server that others use too (``statemodel fuzz --workers N`` against one URL,
or a staging server) the pressure is invisible and such a reset read as "reset only when the
protocol allows it". What the client saw still bounds it: a 1013 in the outage, or an
outage long enough that the server may have been without the connection for
``evict_grace``. A reset after a short outage that no 1013 explains is still a failure.
"""

from __future__ import annotations

import urllib.parse
from typing import Sequence

from statemodel.stream.config import Config
from statemodel.stream.errors import CloseCode

#: PROTOCOL.md §6's evict_grace (the reference default): what the tester assumes of a server
#: it cannot see. A server with a shorter grace needs ``#expiry_after=SECONDS`` in its URL.
EVICT_GRACE = Config().evict_grace


def may_have_shed(client: Config, down_for: float, closes: Sequence[int | None],
                  evict_grace: float = EVICT_GRACE) -> bool:
    """May a shared server have shed a session whose client has been without a connection
    for ``down_for`` seconds, its connections in that outage closed with ``closes``?

    Yes after a 1013 (TRY_AGAIN_LATER: §6 cuts a stalled session with it before evicting).
    Yes once the outage is long enough: the server may have noticed the loss before the
    client, by up to the client's ``dead_after`` + ``close_timeout`` (the client hears
    nothing for dead_after before it gives the connection up, then waits close_timeout for
    its close to be answered; the server may have seen the socket close at once)."""
    if CloseCode.TRY_AGAIN_LATER in closes:
        return True
    return down_for >= evict_grace - (client.dead_after + client.close_timeout)


def shared_url(url: str) -> str:
    """``url`` saying that others use its server too (``#shared=1``), unless its fragment
    already says either way. ``statemodel fuzz --workers N`` marks its target so: the URL
    goes into every reproducer, which then replays with the same allowance."""
    base, _, fragment = url.partition("#")
    options = urllib.parse.parse_qsl(fragment, keep_blank_values=True)
    if any(key == "shared" for key, _ in options):
        return url
    return f"{base}#{urllib.parse.urlencode([*options, ('shared', '1')])}"
