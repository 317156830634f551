"""Test a server you run yourself: ``--target ws://host:port/path --transport tcp``.

The server must speak PROTOCOL.md and serve the scripted app (appendix A) at that URL. The
machine's clients are the reference ``Client`` on short real-time timers; every connection
goes through a loopback ``FaultProxy`` started here, so the whole fault vocabulary (frame-aware
faults included) applies on real sockets. We cannot see inside the server: no restarts, no
buffer bounds, no server-side context; and resets are never excused by time unless you say how
long your server keeps an idle session (``#expiry_after=SECONDS`` at the end of the URL), nor
by another client's pressure unless you say others use the server too (``#shared=1``, which
``statemodel fuzz --workers N`` adds: its workers share the server).
"""

from __future__ import annotations

import contextlib
import math
import random
import ssl
import urllib.parse
from dataclasses import replace
from typing import Sequence

import trio

from statemodel.net import faults as F
from statemodel.stream.client import Client
from statemodel.stream.config import Config
from statemodel.target import shared as shared_server
from statemodel.target.base import scripted_chunks
from statemodel.target.proxied import REAL_TIME_BASE_LATENCY, REAL_TIME_CONFIG, REAL_TIME_MAX_ADVANCE, ProxyFront

#: What a URL's fragment may say about the server (it never reaches the server).
FRAGMENT_OPTIONS = ("expiry_after", "shared")


def is_ws_url(spec: str) -> bool:
    """Does a target spec name a server by URL? The scheme is case-insensitive (RFC 3986
    §3.1): ``WS://`` is ``ws://``, here, in ``parse_ws_url`` and in ``statemodel fuzz
    --workers N``'s shared mark alike."""
    return spec[:6].lower().startswith(("ws://", "wss://"))


def parse_ws_url(url: str) -> tuple[bool, str, int, str, str, dict[str, float]]:
    """``(tls, host, port, host_header, resource, options)`` of a ws:// or wss:// URL.

    ``options`` come from the fragment (``#expiry_after=50&shared=1``), which never reaches
    the server.
    """
    if any(c <= " " or c == "\x7f" for c in url):
        # urlsplit drops some (leading blanks, tabs, newlines) and keeps others (a trailing
        # blank went into the resource, and the handshake's request line with it).
        raise ValueError(f"external target {url!r}: a blank or control character in the URL")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"external target {url!r}: the URL must start with ws:// or wss://")
    if not parts.hostname:
        raise ValueError(f"external target {url!r}: no host in the URL (e.g. ws://127.0.0.1:8765/)")
    if "@" in parts.netloc:
        # It would go into the Host header (which may not carry it, RFC 9110 §7.2) and the
        # client sends no credentials: refused rather than sent where it does not belong.
        raise ValueError(f"external target {url!r}: credentials in the URL (user@host) are not supported")
    tls = parts.scheme == "wss"
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"external target {url!r}: bad port ({exc})") from None
    if port == 0:  # "or 443/80" used to dial the default port instead
        raise ValueError(f"external target {url!r}: bad port (0 cannot be connected to)")
    port = port or (443 if tls else 80)
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    options: dict[str, float] = {}
    for key, value in urllib.parse.parse_qsl(parts.fragment, keep_blank_values=True):
        if key not in FRAGMENT_OPTIONS:
            raise ValueError(f"external target {url!r}: unknown option #{key}= (known: {', '.join(FRAGMENT_OPTIONS)})")
        if key in options:
            raise ValueError(f"external target {url!r}: #{key}= given twice")
        if key == "shared":
            if value not in ("0", "1"):
                raise ValueError(f"external target {url!r}: #shared is 1 (others use the server too) or 0, "
                                 f"got {value!r}")
            options[key] = float(value)
            continue
        try:
            options[key] = float(value)
        except ValueError:
            raise ValueError(f"external target {url!r}: #expiry_after needs seconds, got {value!r}") from None
        if not options[key] > 0:
            raise ValueError(f"external target {url!r}: #expiry_after must be > 0 seconds")
    return tls, parts.hostname, port, parts.netloc, resource, options


class ExternalTarget:
    """A PROTOCOL.md server at a ws:// URL, reached through a loopback fault proxy."""

    can_restart = False  # the server is not ours to kill
    max_advance = REAL_TIME_MAX_ADVANCE  # real seconds per `advance` rule: keeps runs short

    def __init__(self, options, seed: int, *, config: Config = REAL_TIME_CONFIG,
                 connect_timeout: float = 5.0, base_latency: F.Fault | None = REAL_TIME_BASE_LATENCY,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        if options.transport != "tcp":
            raise ValueError(
                f"target {options.target!r} is a real server: it needs --transport tcp "
                f"(got {options.transport!r}; the sim cannot reach sockets)"
            )
        self.url = options.target
        self.tls, self.host, self.port, self.host_header, self.resource, extra = parse_ws_url(self.url)
        self._expiry_after = extra.get("expiry_after", math.inf)
        self.shared = bool(extra.get("shared", 0))
        self.config = replace(config, mutants=frozenset(options.mutants))
        self.seed = seed
        self.connect_timeout = connect_timeout
        # wss: TLS to the server end to end (the proxy forwards records); system CAs by default
        tls = (ssl_context or ssl.create_default_context()) if self.tls else None
        self.front = ProxyFront((self.host, self.port), seed, record=options.record,
                                connect_timeout=connect_timeout, base_latency=base_latency,
                                ssl_context=tls)
        self.net = self.front.net

    @property
    def request(self) -> tuple[str, str]:
        """(Host header, resource) of every WebSocket handshake, rogue peers' too."""
        return self.host_header, self.resource

    # ---- lifecycle -----------------------------------------------------------------------
    async def start(self, nursery: trio.Nursery) -> None:
        await self.front.start(nursery)

    async def stop(self) -> None:
        await self.front.stop()

    async def restart_server(self) -> None:
        raise NotImplementedError("an external server cannot be restarted by the tester (can_restart is False)")

    # ---- connections ---------------------------------------------------------------------
    async def dial(self) -> tuple[trio.abc.Stream, int]:
        return await self.front.dial()

    async def dial_around(self) -> trio.abc.Stream:
        return await self.front.dial_around()

    def new_client(self, dial, rng: random.Random) -> Client:
        return Client(dial, self.config, rng, host=self.host_header, resource=self.resource)

    # ---- faults --------------------------------------------------------------------------
    def apply(self, fault: F.Fault, link: int | None) -> bool:
        return self.front.apply(fault, link)

    def heal(self) -> None:
        self.front.heal()

    def in_flight(self) -> bool:
        """Optional (``Target``, quiet.py): always True, so every step keeps its whole slice.
        The server runs in another process: this run idle with nothing held in the proxy does
        not mean it is done (it may still be working on its answer, say the next tokens), and
        ending the slice there would move a drop from the answer in flight to before it."""
        return True

    def settling(self) -> contextlib.AbstractContextManager:
        """Optional (``Target``): the network while the machine settles (ProxyFront.settling)."""
        return self.front.settling()

    # ---- what the machine may expect -----------------------------------------------------
    def recovery_bound(self) -> float:
        c = self.config
        return c.dead_after + c.backoff_max + 2 * c.handshake_timeout + 2.0

    def expiry_after(self) -> float:
        """Infinite unless the URL says ``#expiry_after=SECONDS``: an unknown server's reset is
        never excused by a long outage we cannot prove it was allowed to expire."""
        return self._expiry_after

    def may_have_shed(self, down_for: float, closes: Sequence[int | None]) -> bool:
        """Optional (``Target``): with ``#shared=1`` (set by ``statemodel fuzz --workers N``)
        others use the server too, and the pressure they make may shed our sessions
        (PROTOCOL.md §6): allowed once what the client saw explains it (target/shared.py).
        Without it a reset is never excused by pressure we cannot see."""
        return self.shared and shared_server.may_have_shed(self.config, down_for, closes)

    def check_bounds(self, largest_message: int) -> None:
        """The server's buffers are out of sight; nothing to check from here."""

    def generation_of(self, session_id: str) -> int:
        """Never restarted by us: every session belongs to the one server we know of."""
        return 0

    def session_context(self, session_id: str) -> dict | None:
        return None

    @staticmethod
    def expected_chunks(command: dict) -> list[str | bytes]:
        return scripted_chunks(command)
