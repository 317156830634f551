"""`statemodel soak`: a long real-loopback run looking for leaks, not just wrong bytes.

A reference server runs in a subprocess (so psutil measures *its* RSS and fds; its stdout
reports stats and its live trio task count). Honest sessions stream seeded data through a
`FaultProxy` that a seeded RNG keeps hurting (aborts, truncation, latency, partitions +
heal), and hostile peers attack the server directly (so their close codes are exact). At
the end every client leaves, and the server must return to its baseline of connections,
sessions, tasks and fds; RSS after warm-up must stay flat. With ``target`` set, an external
server is tested instead (no process figures), and ``hostile_only`` runs just the attacks.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trio

from statemodel.hostile import bounds
from statemodel.hostile.attacks import ATTACKS, QUICK, SLOW, AttackContext, Limits, Verdict, run_attack
from statemodel.hostile.fairness import LatencyProbe
from statemodel.net import faults as F
from statemodel.net.tcp import FaultProxy
from statemodel.soak.honest import HonestStats, honest_session
from statemodel.soak.pressure import fd_exhaustion, honest_request, limit_fds, prehello_frames
from statemodel.soak.server import soak_config
from statemodel.stream.config import Config

MiB = 1 << 20


@dataclass
class SoakConfig:
    duration: float = 60.0
    sessions: int = 10
    seed: int = 0
    target: str | None = None  # ws://host:port/ of an external server; None = reference subprocess
    hostile: bool = True
    hostile_only: bool = False
    slow_attacks: bool = True  # slowloris, silent, never-ack, flood: each holds a connection for seconds
    max_sessions: int | None = None  # reference default: sessions + 64 (so a flood is cheap)
    session_ttl: float = 30.0  # reference server: sessions orphaned by attacks expire this fast
    fault_every: tuple[float, float] = (1.0, 4.0)
    attack_every: float = 2.0
    slow_attack_every: float = 20.0
    warmup: float = 0.2  # fraction of the run excluded from the RSS trend
    rss_growth: float = 0.10  # allowed growth of the last third's median over the first's...
    rss_slack_mib: float = 8.0  # ...plus this much
    fd_slack: int = 2
    settle_timeout: float | None = None  # default session_ttl + 20 s
    # Reference server only: its RLIMIT_NOFILE, and how often a pressure round runs out of
    # it (fd exhaustion) or pins pre-hello memory (0 = never).
    nofile: int | None = None  # default: the server's pre-hello budget (see __post_init__)
    pressure_every: float = 120.0
    prehello_rss_slack_mib: float = 16.0  # RSS noise a pre-hello flood is allowed on top of its budget
    # An honest probe session's small requests (direct, no faults) must finish within this
    # many seconds while attacks run; default `bounds.soak_latency` (real time is noisy).
    latency_bound: float | None = None

    def __post_init__(self) -> None:
        if self.duration <= 0 or self.sessions < 0:
            raise ValueError("duration must be > 0 and sessions >= 0")
        if self.target is not None:
            u = urlsplit(self.target)
            if u.scheme != "ws" or not u.hostname or not u.port:
                raise ValueError(f"target must look like ws://host:port/, got {self.target!r}")
        if self.max_sessions is None and self.target is None:
            self.max_sessions = self.sessions + 64
        if self.nofile is None:
            # The server's own budgets cap what idle peers can make it hold: the pre-hello
            # budget (the oldest dropped beyond it) and max_sessions (4009 beyond). A limit
            # above their sum is never reached, so a pressure round would exercise nothing;
            # at the pre-hello budget the honest load still fits and a round runs it out.
            self.nofile = bounds.prehello_connections(Config())


@dataclass
class Sample:
    t: float
    rss: int | None
    fds: int | None
    tasks: int | None
    sessions: int | None
    connections: int | None
    buffered_bytes: int | None
    load: float | None = None  # the machine's 1-minute load average (how busy the host was)


@dataclass
class SoakResult:
    config: dict
    passed: bool = False
    failures: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    honest: dict[str, Any] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    attacks: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {**asdict(self), "samples": [asdict(s) for s in self.samples]}


STATS_SILENCE = 30.0  # seconds without a stats line before the soak records a stall


class ServerDied(RuntimeError):
    """The server process exited while the soak ran: no input may end it (a failure)."""


class ServerProcess:
    """The reference server in a subprocess, with its latest stats line."""

    def __init__(self, cfg: SoakConfig) -> None:
        self.cfg = cfg
        self.port: int | None = None
        self.pid: int | None = None
        self.stats: dict[str, Any] = {}
        self.proc: trio.Process | None = None
        self.stderr_tail = b""
        self.stalls: list[str] = []  # stats silences longer than STATS_SILENCE (hung or starved)
        self.errors: list[str] = []  # ERROR lines and tracebacks the server logged (first few)
        self.error_count = 0
        self.warnings = 0
        self.tail: list[str] = []  # its last stderr lines
        self.stopping = False

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        cmd = [sys.executable, "-m", "statemodel.soak.server", "--port", "0", "--interval", "0.5",
               "--max-sessions", str(self.cfg.max_sessions), "--session-ttl", str(self.cfg.session_ttl)]
        async with trio.open_nursery() as nursery:
            self.proc = await nursery.start(
                lambda task_status: trio.run_process(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                     check=False, task_status=task_status,
                                                     preexec_fn=limit_fds(self.cfg.nofile)))
            nursery.start_soon(self._read_log)
            buf = b""
            started = False
            silent_since = trio.current_time()
            while True:
                # The server prints a stats line every 0.5 s: a long silence is a failure to
                # report (hung, or starved by a loaded host), not a reason to crash the soak.
                with trio.move_on_after(STATS_SILENCE) as quiet:
                    data = await self.proc.stdout.receive_some(65536)
                if quiet.cancelled_caught:
                    if len(self.stalls) < 10:
                        self.stalls.append(f"the server printed no stats for {STATS_SILENCE:g} s "
                                           f"(from t={silent_since:.0f} s of the trio clock): hung or starved")
                    continue
                silent_since = trio.current_time()
                if not data:
                    if self.stopping:
                        return
                    await self.proc.wait()
                    tail = " | ".join(self.tail[-3:])
                    raise ServerDied(f"the server process exited (code {self.proc.returncode}) while the soak "
                                     f"ran; its last log lines: {tail[-600:] or '(none)'}")
                buf += data
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.startswith(b"READY "):
                        _, port, pid = line.split()
                        self.port, self.pid = int(port), int(pid)
                    elif line.startswith(b"{"):
                        self.stats = json.loads(line)
                        if not started and self.port is not None:
                            started = True
                            task_status.started()

    async def _read_log(self) -> None:
        """The server logs WARNING and up to stderr (one line each): an ERROR (a contained
        failure of its own) or a traceback is a failure of the soak."""
        buf = b""
        while True:
            data = await self.proc.stderr.receive_some(65536)
            if not data:
                return
            buf += data
            *lines, buf = buf.split(b"\n")
            for raw in lines:
                line = raw.decode("utf-8", "replace")
                self.tail = (self.tail + [line[:300]])[-20:]
                if line.startswith(("ERROR", "CRITICAL")) or line.startswith("Traceback"):
                    self.error_count += 1
                    if len(self.errors) < 10:
                        self.errors.append(line[:300])
                elif line.startswith("WARNING"):
                    self.warnings += 1

    def stop(self) -> None:
        self.stopping = True
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()


def _measure(pid: int | None) -> tuple[int | None, int | None]:
    if pid is None:
        return None, None
    import psutil

    try:
        p = psutil.Process(pid)
        return p.memory_info().rss, p.num_fds()
    except psutil.Error:
        return None, None


async def _fault_loop(proxy: FaultProxy, rng: random.Random, cfg: SoakConfig, counts: dict[str, int]) -> None:
    """Hurt the honest sessions' links, always healing within seconds (below dead_after)."""
    while True:
        await trio.sleep(rng.uniform(*cfg.fault_every))
        links = sorted(proxy.links)
        roll = rng.random()
        if roll < 0.55 and links:
            fault: F.Fault = rng.choice([F.Abort(), F.Abort(), F.CleanClose(), F.TruncateMidFrame()])
            proxy.apply(fault, rng.choice(links))
        elif roll < 0.7:
            fault = F.Latency(seconds=0.02, jitter=0.03)
            proxy.apply(fault)
            await trio.sleep(rng.uniform(0.5, 3.0))
            proxy.heal()
        elif roll < 0.85 and links:
            fault = F.Partition()
            proxy.apply(fault, rng.choice(links))
            await trio.sleep(rng.uniform(0.5, 4.0))
            proxy.heal()
        else:
            fault = F.Partition()
            proxy.apply(fault)
            await trio.sleep(rng.uniform(0.5, 3.0))
            proxy.heal()
        name = type(fault).__name__
        counts[name] = counts.get(name, 0) + 1
        proxy.trace.clear()  # a long run must not keep its own history in memory


def _tally(result: SoakResult, v: Verdict) -> None:
    row = result.attacks.setdefault(v.attack, {"ok": 0, "failed": 0})
    row["ok" if v.ok else "failed"] += 1
    if not v.ok and len(result.failures) < 50:
        result.failures.append(f"attack {v}")


class Turns:
    """Attacks run side by side, but a session flood or a pressure round runs alone: the
    others would get its 4009 or its EMFILE. Waiting for one's turn is fair (writers first)."""

    def __init__(self) -> None:
        self._lock = trio.Lock()
        self._shared = 0
        self._drained = trio.Event()

    @asynccontextmanager
    async def shared(self):
        async with self._lock:
            self._shared += 1
        try:
            yield
        finally:
            self._shared -= 1
            if not self._shared:
                self._drained.set()

    @asynccontextmanager
    async def alone(self):
        async with self._lock:
            while self._shared:
                self._drained = trio.Event()
                await self._drained.wait()
            yield


async def _attack_loop(ctx: AttackContext, names: tuple[str, ...], every: float, result: SoakResult,
                       turns: Turns) -> None:
    while True:
        await trio.sleep(every)
        name = ctx.rng.choice(names)
        with trio.move_on_after(ctx.limits.dead_after * 2 + 60):  # an attack must never hang the soak
            async with (turns.alone() if name == "session_flood" else turns.shared()):
                _tally(result, await run_attack(name, ctx))


async def _pressure_loop(server: "ServerProcess", host: str, port: int, cfg: SoakConfig, result: SoakResult,
                         turns: Turns, rng: random.Random) -> None:
    """Now and then, run the server's process out of file descriptors (more idle connections
    than its RLIMIT_NOFILE) or pin pre-hello memory (frames in progress, never a hello);
    either way the process must live and serve an honest request afterwards, and the
    pre-hello flood must stay within its documented byte budget."""
    config = soak_config(cfg.max_sessions, cfg.session_ttl)
    kinds = ("fd_exhaustion", "prehello_memory")
    n = rng.randrange(len(kinds))
    while True:
        await trio.sleep(cfg.pressure_every)
        kind, n = kinds[n % len(kinds)], n + 1
        async with turns.alone():
            with trio.move_on_after(config.handshake_timeout * 3 + 60):
                _tally(result, await _pressure(kind, server, host, port, cfg, config))


async def _pressure(kind: str, server: "ServerProcess", host: str, port: int, cfg: SoakConfig,
                    config: Config) -> Verdict:
    expected = ("served",)
    hold = min(config.handshake_timeout / 2, 5.0)
    base_rss, _ = _measure(server.pid)
    accept_errors = server.stats.get("accept_errors", 0)
    peak = base_rss or 0
    async with trio.open_nursery() as nursery:
        if kind == "fd_exhaustion":
            nursery.start_soon(fd_exhaustion, host, port, cfg.nofile + 64, hold)
        else:
            count = max(1, bounds.prehello_connections(config) or 64)
            nursery.start_soon(prehello_frames, host, port, count, config.max_frame_size, hold)
        while nursery.child_tasks:
            await trio.sleep(0.25)
            peak = max(peak, _measure(server.pid)[0] or 0)
    if server.proc is None or server.proc.returncode is not None:
        return Verdict(kind, expected, "exited", detail=f"the server process exited ({server.proc.returncode})")
    try:
        latency = await honest_request(host, port, Config(), timeout=config.handshake_timeout * 2)
    except (trio.TooSlowError, OSError, Exception) as exc:  # noqa: BLE001 - any failure to serve is the verdict
        return Verdict(kind, expected, "not_served", detail=f"an honest request afterwards failed: {exc!r}"[:200])
    if kind == "fd_exhaustion" and "accept_errors" in server.stats and server.stats["accept_errors"] == accept_errors:
        return Verdict(kind, expected, "not_exhausted", detail=(
            f"{cfg.nofile + 64} idle connections never ran the server out of descriptors (no accept "
            f"error counted): its budgets keep it below --nofile {cfg.nofile}; lower it"))
    if kind == "prehello_memory" and base_rss:
        budget = bounds.prehello_bytes(config) + cfg.prehello_rss_slack_mib * MiB
        if peak - base_rss > budget:
            return Verdict(kind, expected, "over_budget",
                           detail=f"RSS +{(peak - base_rss) / MiB:.1f} MiB during a pre-hello flood "
                                  f"(budget {bounds.prehello_bytes(config) / MiB:.1f} MiB + {cfg.prehello_rss_slack_mib:g} MiB noise)")
    return Verdict(kind, expected, "served", detail=f"honest request {latency:.3f}s after")


def _trend(samples: list[Sample], cfg: SoakConfig, result: SoakResult) -> None:
    rss = [s for s in samples if s.rss is not None and s.t <= cfg.duration]  # load phase only
    if not rss:
        return
    start = rss[0].t
    span = rss[-1].t - start
    body = [s for s in rss if s.t - start >= cfg.warmup * span]
    third = max(1, len(body) // 3)
    first = statistics.median(s.rss for s in body[:third])
    last = statistics.median(s.rss for s in body[-third:])
    f = result.figures
    f.update(rss_start_mib=round(rss[0].rss / MiB, 1), rss_end_mib=round(rss[-1].rss / MiB, 1),
             rss_peak_mib=round(max(s.rss for s in rss) / MiB, 1),
             rss_first_third_median_mib=round(first / MiB, 1), rss_last_third_median_mib=round(last / MiB, 1))
    allowed = first * (1 + cfg.rss_growth) + cfg.rss_slack_mib * MiB
    if last > allowed:
        result.failures.append(f"RSS grew after warm-up: median {last / MiB:.1f} MiB in the last third vs "
                               f"{first / MiB:.1f} MiB in the first (allowed {allowed / MiB:.1f})")


async def soak(cfg: SoakConfig, progress=None) -> SoakResult:
    result = SoakResult(config={k: v for k, v in asdict(cfg).items()})
    try:
        await _soak(cfg, result, progress)
    except* ServerDied as group:
        result.failures.append(str(group.exceptions[0]))
    result.passed = not result.failures
    return result


async def _soak(cfg: SoakConfig, result: SoakResult, progress) -> None:
    rng = random.Random(cfg.seed)
    server = ServerProcess(cfg) if cfg.target is None else None
    async with trio.open_nursery() as root:
        if server is not None:
            await root.start(server.run)
            host, port = "127.0.0.1", server.port
            server_config = soak_config(cfg.max_sessions, cfg.session_ttl)
            limits = Limits.of(server_config)
            await trio.sleep(1.0)  # one more stats line: the idle baseline
            base_rss, base_fds = _measure(server.pid)
            result.figures.update(baseline_fds=base_fds, baseline_tasks=server.stats.get("tasks"),
                                  baseline_rss_mib=round((base_rss or 0) / MiB, 1))
        else:
            u = urlsplit(cfg.target)
            host, port = u.hostname, u.port
            server_config = Config() if cfg.max_sessions is None else Config(max_sessions=cfg.max_sessions)
            limits = Limits.of(server_config)

        async def direct_dial():
            return await trio.open_tcp_stream(host, port)

        t0 = trio.current_time()
        stop = trio.Event()
        honest = HonestStats()

        def sample() -> None:
            rss, fds = _measure(server.pid if server else None)
            s = server.stats if server else {}
            result.samples.append(Sample(round(trio.current_time() - t0, 2), rss, fds, s.get("tasks"),
                                         s.get("sessions"), s.get("connections"), s.get("buffered_bytes"),
                                         round(os.getloadavg()[0], 2)))
            if progress is not None:
                progress(result.samples[-1], honest)

        interval = max(1.0, cfg.duration / 360)
        ctx = AttackContext(direct_dial, limits, timeout=10.0, victims=list, rng=random.Random(cfg.seed + 1))
        flood_ok = limits.max_sessions <= 2048
        slow = tuple(n for n in SLOW if cfg.slow_attacks and (n != "session_flood" or flood_ok))
        # The fairness probe: an honest session on a direct (fault-free) connection whose small
        # requests measure how long the server keeps an honest client waiting under attack.
        probe = LatencyProbe(direct_dial, Config(), random.Random(cfg.seed + 4), every=1.0)
        latency_bound = cfg.latency_bound if cfg.latency_bound is not None else bounds.soak_latency(server_config)
        async with trio.open_nursery() as work:
            if cfg.hostile_only:
                work.start_soon(_hostile_only, ctx, slow, cfg, result, stop)
            else:
                proxy = FaultProxy((host, port), seed=cfg.seed, record_bytes=False)
                await work.start(proxy.serve)
                await work.start(probe.run)
                async with trio.open_nursery() as clients:
                    for i in range(cfg.sessions):
                        clients.start_soon(honest_session, i, proxy.connect, Config(), cfg.seed, honest, stop)
                    work.start_soon(_fault_loop, proxy, random.Random(cfg.seed + 2), cfg, result.faults)
                    if cfg.hostile:
                        turns = Turns()
                        work.start_soon(_attack_loop, ctx, QUICK, cfg.attack_every, result, turns)
                        slow_ctx = AttackContext(direct_dial, limits, 10.0, list, random.Random(cfg.seed + 3))
                        if slow:
                            work.start_soon(_attack_loop, slow_ctx, slow, cfg.slow_attack_every, result, turns)
                        if server is not None and cfg.slow_attacks and cfg.pressure_every > 0:
                            work.start_soon(_pressure_loop, server, host, port, cfg, result, turns,
                                            random.Random(cfg.seed + 5))
                    deadline = t0 + cfg.duration
                    while trio.current_time() < deadline and not honest.violations:
                        sample()
                        await trio.sleep(min(interval, max(0.0, deadline - trio.current_time())))
                    stop.set()
                    with trio.move_on_after(180) as scope:  # let the streams in flight finish
                        while clients.child_tasks:
                            await trio.sleep(0.5)
                    if scope.cancelled_caught:
                        result.failures.append("honest sessions did not finish within 180 s of the stop")
                        clients.cancel_scope.cancel()
                proxy.heal()
                _judge_latency(probe, latency_bound, result)
            if cfg.hostile_only:
                await stop.wait()
            work.cancel_scope.cancel()
        result.honest = {k: v for k, v in asdict(honest).items() if k != "violations"}
        result.failures[:0] = honest.violations[:20]
        if server is not None:
            await _settle(server, cfg, result, sample)
            result.failures.extend(server.stalls)
            _judge_server_log(server, result)
            _trend(result.samples, cfg, result)
            server.stop()
        loads = [s.load for s in result.samples if s.load is not None]
        if loads:
            result.figures.update(load_1m_min=min(loads), load_1m_median=statistics.median(loads), load_1m_max=max(loads))
        root.cancel_scope.cancel()


def _judge_latency(probe: LatencyProbe, bound: float, result: SoakResult) -> None:
    """The fairness invariant on real time: every probe request within ``bound``."""
    summary = probe.summary()
    late = sum(1 for x in probe.latencies if x > bound)
    result.figures["honest_latency_s"] = {**summary, "bound": bound, "over_bound": late}
    if late:
        result.failures.append(f"fairness: {late} of {summary['requests']} honest probe requests took longer than "
                               f"{bound:g} s while attacks ran (max {summary['max']} s)")
    if probe.failures:
        result.failures.append(f"honest probe session: {probe.failures[0]}")


def _judge_server_log(server: "ServerProcess", result: SoakResult) -> None:
    """No-unhandled-exception invariant on a real process: nothing at ERROR, no traceback,
    and no contained internal error counted in its stats."""
    internal = server.stats.get("internal_errors", 0)
    result.figures.update(server_log_errors=server.error_count, server_log_warnings=server.warnings,
                          server_internal_errors=internal,
                          **{k: server.stats[k] for k in ("closed_bad_input", "closed_internal_error",
                                                          "handshakes_failed", "accept_errors") if k in server.stats})
    if server.error_count:
        result.failures.append(f"the server logged {server.error_count} errors/tracebacks; first: {server.errors[0]}")
    if internal:
        result.failures.append(f"the server counted {internal} internal errors (contained exceptions of its own)")


async def _hostile_only(ctx, slow, cfg, result, stop) -> None:
    """Every attack in turn (the slow ones included) until the duration is used up."""
    names = [n for n in ATTACKS if n in QUICK or n in slow]
    end = trio.current_time() + cfg.duration
    try:
        while True:
            for name in names:
                with trio.move_on_after(ctx.limits.dead_after * 2 + 60):
                    _tally(result, await run_attack(name, ctx))
            if trio.current_time() >= end:
                return
    finally:
        stop.set()


async def _settle(server: ServerProcess, cfg: SoakConfig, result: SoakResult, sample) -> None:
    """After every client left, connections, sessions, tasks and fds must come back to the
    idle baseline (sessions orphaned by attacks expire after session_ttl)."""
    f = result.figures
    base_fds, base_tasks = f.get("baseline_fds"), f.get("baseline_tasks")
    timeout = cfg.settle_timeout if cfg.settle_timeout is not None else cfg.session_ttl + 20
    ok = False
    with trio.move_on_after(timeout):
        while True:
            await trio.sleep(1.0)
            sample()
            s = result.samples[-1]
            ok = (s.connections == 0 and s.sessions == 0 and s.tasks is not None and s.tasks <= base_tasks
                  and s.fds is not None and s.fds <= base_fds + cfg.fd_slack)
            if ok:
                break
    s = result.samples[-1]
    f.update(end_fds=s.fds, end_tasks=s.tasks, end_sessions=s.sessions, end_connections=s.connections,
             peak_tasks=max((x.tasks or 0) for x in result.samples),
             peak_sessions=max((x.sessions or 0) for x in result.samples))
    if not ok:
        result.failures.append(
            f"server did not return to baseline within {timeout:g}s after clients left: connections "
            f"{s.connections}, sessions {s.sessions}, tasks {s.tasks} (baseline {base_tasks}), "
            f"fds {s.fds} (baseline {base_fds})")


def write_report(result: SoakResult, directory: str | os.PathLike) -> Path:
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    out = path / "summary.json"
    out.write_text(json.dumps(result.to_json(), indent=1, default=str))
    return out


def summary_lines(result: SoakResult) -> list[str]:
    lines = [f"soak {'PASSED' if result.passed else 'FAILED'}"]
    if result.figures:
        lines.append("figures: " + ", ".join(f"{k}={v}" for k, v in result.figures.items()))
    if result.honest:
        lines.append("honest: " + ", ".join(f"{k}={v}" for k, v in result.honest.items()))
    if result.faults:
        lines.append("faults: " + ", ".join(f"{k}={v}" for k, v in sorted(result.faults.items())))
    if result.attacks:
        lines.append("attacks: " + ", ".join(f"{k}={v['ok']}/{v['ok'] + v['failed']}"
                                             for k, v in sorted(result.attacks.items())))
    lines.extend(f"FAIL: {f}" for f in result.failures[:20])
    return lines


__all__ = ["SoakConfig", "SoakResult", "Sample", "soak", "write_report", "summary_lines"]
