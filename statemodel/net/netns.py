"""``netns`` backend (Linux, root): real kernel-level faults on a private veth link.

Per run: a network namespace plus a veth pair with a private /30 (10.213.x.y) that
exists only on that pair. The server listens *inside* the namespace (its socket is
created from a helper thread that ``setns``-es into it, so any in-process trio server
can ``serve`` on ``net.listener()``); clients connect from the host side. Faults are
iptables rules inside the namespace -- so the host's own rules are never touched --
in two chains hooked into INPUT (c2s) and OUTPUT (s2c) on the veth:

* ``SM_DEGRADE`` (flushed by ``heal``): ``Partition``/``Clog`` = DROP (TCP retransmits
  after heal), ``PacketLoss`` = ``-m statistic --mode random|nth`` DROP;
* ``SM_DROP`` (permanent): ``HalfOpen`` = DROP, ``Abort``/``DropDuringHandshake`` =
  ``REJECT --reject-with tcp-reset`` for that link's port.

``tc netem`` is not available on our machines, so Latency, Bandwidth, Slice,
CleanClose, TruncateMidFrame and frame-aware faults raise ``UnsupportedFault`` --
use the sim or tcp backend (or a ``FaultProxy`` in front) for those. ``close()``
(or leaving the ``with`` block) deletes the namespace and the veth, even on failure.
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import os
import shutil
import socket
import subprocess
import sys
import threading

import trio

from . import faults as F
from .trace import Trace

CLONE_NEWNET = 0x40000000
CMD_TIMEOUT = 10.0
SUPPORTED = (F.Partition, F.Clog, F.PacketLoss, F.HalfOpen, F.Abort, F.DropDuringHandshake, F.Heal)
_counter = itertools.count()


class UnsupportedFault(ValueError):
    """The netns backend cannot express this fault with iptables alone."""


def unavailable_reason() -> str | None:
    """Why this machine cannot run the netns backend, or None if it can."""
    if not sys.platform.startswith("linux"):
        return "netns backend needs Linux network namespaces"
    if os.geteuid() != 0:
        return "netns backend needs root and 'ip netns' (run as root, as CI does)"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"netns backend needs '{tool}' (apt-get install iproute2 iptables)"
    return None


def _now() -> float:
    try:
        return trio.current_time()
    except RuntimeError:  # applied from outside trio.run
        return 0.0


def _run(*cmd: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
    """One command (``stdin``: its input, for ``ip -batch -`` and ``iptables-restore``: one
    process for many changes, where each process costs 2-5 ms and a boot made sixteen)."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CMD_TIMEOUT, input=stdin)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def _in_netns(name: str, fn):
    """Run ``fn()`` in a helper thread moved into namespace ``name``; sockets it creates
    stay in that namespace for their whole life."""
    box: dict = {}

    def target() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns into {name}: {os.strerror(err)}")
            box["value"] = fn()
        except BaseException as exc:  # handed back to the caller's thread
            box["error"] = exc
        finally:
            os.close(fd)

    thread = threading.Thread(target=target, name=f"setns-{name}", daemon=True)
    thread.start()
    thread.join(CMD_TIMEOUT)
    if "error" in box:
        raise box["error"]
    if "value" not in box:
        raise RuntimeError(f"timed out entering namespace {name}")
    return box["value"]


def cleanup_stale() -> list[str]:
    """Delete namespaces (and their veths) left by statemodel processes that died
    without cleaning up (SIGKILL); names carry the owner's pid."""
    removed = []
    for line in _run("ip", "netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith("statemodel") or "x" not in name:
            continue
        pid = name[len("statemodel"):].split("x", 1)[0]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            tag = name[len("statemodel"):]
            _run("ip", "link", "del", f"smh{tag}"[:15], check=False)
            _run("ip", "netns", "del", name, check=False)
            removed.append(name)
    return removed


class NetnsNetwork:
    """Same shape as ``SimNetwork``: ``listener()``, ``await connect()``, ``apply``,
    ``heal``, ``links``, ``trace``. Use as a context manager (sync) so cleanup is certain."""

    def __init__(self, seed: int = 0) -> None:
        reason = unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        self.seed = seed
        self.trace = Trace()
        n = next(_counter)
        tag = f"{os.getpid() % 10_000_000}x{n}"
        self.name = f"statemodel{tag}"
        self.host_if, self.ns_if = f"smh{tag}"[:15], f"sms{tag}"[:15]
        self.host_addr = self.ns_addr = ""
        self._links: dict[int, trio.SocketStream] = {}
        self._ports: dict[int, int] = {}
        self._rules: list[tuple[str, int | None, list[str]]] = []  # (chain, link, spec)
        self._handshake_drops = 0
        self._partitioned = False
        self._lifted: trio.Event | None = None  # set by the next heal that lifts a rule (connect)
        self._open = False
        self.port: int | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def _free_subnet(self) -> tuple[str, str]:
        used = _run("ip", "-o", "-4", "addr", "show").stdout
        base = os.getpid() + next(_counter)
        for i in range(256 * 64):
            k = (base + i) % (256 * 64)
            third, fourth = k // 64, (k % 64) * 4
            net = f"10.213.{third}."
            if f"{net}{fourth + 1}/" not in used and f"{net}{fourth + 2}/" not in used:
                return f"{net}{fourth + 1}", f"{net}{fourth + 2}"
        raise RuntimeError("no free /30 in 10.213.0.0/16")

    def open(self) -> "NetnsNetwork":
        if self._open:
            return self
        self._open = True
        atexit.register(self.close)
        cleanup_stale()
        try:
            self.host_addr, self.ns_addr = self._free_subnet()
            _run("ip", "-batch", "-", stdin="\n".join([
                f"netns add {self.name}",
                f"link add {self.host_if} type veth peer name {self.ns_if}",
                f"link set {self.ns_if} netns {self.name}",
                f"addr add {self.host_addr}/30 dev {self.host_if}",
                f"link set {self.host_if} up",
            ]) + "\n")
            _run("ip", "-n", self.name, "-batch", "-", stdin="\n".join([
                f"addr add {self.ns_addr}/30 dev {self.ns_if}",
                f"link set {self.ns_if} up",
                "link set lo up",
            ]) + "\n")
            lines = []
            for chain in ("SM_DEGRADE", "SM_DROP"):
                lines += [f":{chain} - [0:0]", f"-A INPUT -i {self.ns_if} -j {chain}", f"-A OUTPUT -o {self.ns_if} -j {chain}"]
            self._iptables(lines)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Delete the veth and the namespace (its iptables rules go with it). Idempotent."""
        if not self._open:
            return
        self._open = False
        try:
            _run("ip", "link", "del", self.host_if, check=False)
        finally:
            _run("ip", "netns", "del", self.name, check=False)
        try:
            atexit.unregister(self.close)
        except Exception:  # pragma: no cover
            pass

    def __enter__(self) -> "NetnsNetwork":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- endpoints ---------------------------------------------------------------------

    def listener(self, port: int = 0) -> trio.SocketListener:
        """A listening socket inside the namespace (for ``Server.serve`` or any trio server)."""

        def make() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.ns_addr, port))
            sock.listen(128)
            sock.setblocking(False)
            return sock

        sock = _in_netns(self.name, make)
        self.port = sock.getsockname()[1]
        return trio.SocketListener(trio.socket.from_stdlib_socket(sock))

    async def connect(self, port: int | None = None, timeout: float = 10.0, *,
                      link: int | None = None) -> trio.SocketStream:
        """Connect from the host side to the server in the namespace (bounded). ``link``
        names the connection for ``apply`` (default: the next number); a fault proxy in
        front passes its own link id, so one id means one connection in both layers."""
        port = port or self.port
        if port is None:
            raise RuntimeError("nobody listens yet: call net.listener() first")
        with trio.fail_after(timeout):
            stream = None
            while stream is None:
                stream = await self._dial_until_lifted(port)
        if link is None:
            link = max(self._ports, default=-1) + 1
        self._links[link] = stream
        self._ports[link] = stream.socket.getsockname()[1]
        self.trace.add(_now(), link, "both", "connect", 0, f"port={self._ports[link]}")
        if self._handshake_drops:
            self._handshake_drops -= 1
            self._add_rules(F.Abort(), link, "SM_DROP")
        return stream

    async def _dial_until_lifted(self, port: int) -> trio.SocketStream | None:
        """One dial, given up (None) when a heal lifts a rule while it is under way. A SYN a
        partition dropped is resent only after the kernel's retransmission timeout (1 s, then
        3 s): dialled again at once, the connection is up as soon as the network is, as a
        client with its own connect timeout would be. (It cost netns fuzz runs 30-40 s of
        legs in a 90 s run.)"""
        if self._lifted is None:
            self._lifted = trio.Event()
        lifted, got, refused = self._lifted, [], []
        async with trio.open_nursery() as nursery:
            async def dial() -> None:
                try:
                    got.append(await trio.open_tcp_stream(self.ns_addr, port))
                except OSError as exc:  # raised below as itself: the nursery would wrap it in a group
                    refused.append(exc)
                nursery.cancel_scope.cancel()

            async def redial() -> None:
                await lifted.wait()
                self.trace.add(_now(), None, "both", "redial", 0, "a heal lifted a rule mid-connect")
                nursery.cancel_scope.cancel()

            nursery.start_soon(dial)
            nursery.start_soon(redial)
        if refused:  # a caller's ``except OSError`` (the fault proxy's leg) must see it
            raise refused[0]
        return got[0] if got else None

    async def connect_inside(self, port: int | None = None, timeout: float = 10.0) -> trio.SocketStream:
        """A connection from inside the namespace, over its own loopback: it never crosses the
        veth, so no fault reaches it (for peers that are not on the faulted path)."""
        port = port or self.port
        if port is None:
            raise RuntimeError("nobody listens yet: call net.listener() first")

        def make() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            return sock

        sock = trio.socket.from_stdlib_socket(await trio.to_thread.run_sync(_in_netns, self.name, make))
        try:
            with trio.fail_after(timeout):
                await sock.connect((self.ns_addr, port))
        except BaseException:
            sock.close()
            raise
        return trio.SocketStream(sock)

    @property
    def links(self) -> list[int]:
        return [i for i, s in self._links.items() if s.socket.fileno() != -1]

    # -- faults ------------------------------------------------------------------------

    def _iptables(self, lines: list[str], check: bool = True) -> bool:
        """Apply iptables changes in the namespace in one process (``iptables-restore --noflush``:
        one transaction, all or none). False if it failed and ``check`` is False."""
        if not lines:
            return True
        table = "*filter\n" + "\n".join(lines) + "\nCOMMIT\n"
        proc = _run("ip", "netns", "exec", self.name, "iptables-restore", "--noflush", check=check, stdin=table)
        return proc.returncode == 0

    def _add_rules(self, fault: F.Fault, link: int | None, chain: str) -> None:
        added = []
        for direction in F.expand(getattr(fault, "direction", "both")):
            port = [] if link is None else [str(self._ports[link])]
            if direction == "c2s":  # arriving at the server: the client's port is the source
                spec = ["-i", self.ns_if, "-p", "tcp"] + (["--sport", *port] if port else [])
            else:
                spec = ["-o", self.ns_if, "-p", "tcp"] + (["--dport", *port] if port else [])
            if isinstance(fault, F.PacketLoss):
                if fault.every:
                    spec += ["-m", "statistic", "--mode", "nth", "--every", str(fault.every), "--packet", "0"]
                else:
                    spec += ["-m", "statistic", "--mode", "random", "--probability", f"{fault.probability:.6f}"]
            if isinstance(fault, F.Abort):
                # spare RSTs: the reset REJECT sends for the other direction must get out
                spec += ["--tcp-flags", "RST", "NONE", "-j", "REJECT", "--reject-with", "tcp-reset"]
            else:
                spec += ["-j", "DROP"]
            added.append((chain, link, spec))
        self._iptables([f"-A {chain} {' '.join(spec)}" for chain, _, spec in added])
        self._rules += added

    def apply(self, fault: F.Fault, link: int | None = None) -> int:
        if not isinstance(fault, F.Fault):
            raise TypeError(f"apply() needs a Fault, got {fault!r}")
        if not isinstance(fault, SUPPORTED):
            raise UnsupportedFault(
                f"netns backend cannot apply {fault!r}: iptables alone cannot express it and tc netem "
                "is not available; use the sim or tcp backend (or a FaultProxy in front) for it"
            )
        if isinstance(fault, F.Heal):
            self.heal(link)
            return 0
        if isinstance(fault, F.DropDuringHandshake):
            link = None  # always arms the *next* link
        if link is not None and link not in self.links:
            raise ValueError(f"no live link {link}; live links: {self.links}")
        self.trace.add(_now(), link, getattr(fault, "direction", "both"), "fault", 0, repr(fault))
        if isinstance(fault, F.DropDuringHandshake):
            self._handshake_drops += 1
        elif isinstance(fault, (F.Abort, F.HalfOpen)):
            # drops hit live links only: one rule set per link, never the whole veth
            for i in [link] if link is not None else self.links:
                self._add_rules(fault, i, "SM_DROP")
        else:
            self._add_rules(fault, link, "SM_DEGRADE")
        return len(self._rules)

    def heal(self, link: int | None = None) -> None:
        """Remove degrade rules (all, or one link's); HalfOpen and Abort stay."""
        self.trace.add(_now(), link, "both", "fault", 0, "Heal()")
        keep, lift = [], []
        for rule in self._rules:
            chain, target, _ = rule
            (lift if chain == "SM_DEGRADE" and (link is None or target == link) else keep).append(rule)
        if not self._iptables([f"-D {chain} {' '.join(spec)}" for chain, _, spec in lift], check=False):
            for chain, _, spec in lift:  # one at a time: a rule already gone must not keep the others
                _run("ip", "netns", "exec", self.name, "iptables", "-D", chain, *spec, check=False)
        self._rules = keep
        if lift and self._lifted is not None:  # dials under way go again (_dial_until_lifted)
            self._lifted.set()
            self._lifted = None

    def losing(self) -> bool:
        """A packet-loss rule is in force: a dropped segment is still on its way (TCP resends it)."""
        return any(chain == "SM_DEGRADE" and "statistic" in spec for chain, _, spec in self._rules)

    def rule_counters(self) -> dict[str, int]:
        """Packets matched per rule in our chains (``iptables -L -v -x``), for tests."""
        out = {}
        for chain in ("SM_DEGRADE", "SM_DROP"):
            text = _run("ip", "netns", "exec", self.name, "iptables", "-L", chain, "-v", "-x", "-n").stdout
            for line in text.splitlines()[2:]:
                cols = line.split()
                if cols:
                    out[f"{chain}: {' '.join(cols[2:])}"] = int(cols[0])
        return out
