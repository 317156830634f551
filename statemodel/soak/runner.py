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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trio

from statemodel.hostile.attacks import ATTACKS, QUICK, AttackContext, Limits, Verdict, run_attack
from statemodel.net import faults as F
from statemodel.net.tcp import FaultProxy
from statemodel.soak.honest import HonestStats, honest_session
from statemodel.soak.server import soak_config
from statemodel.stream.config import Config

MiB = 1 << 20
SLOW = ("slowloris", "silent_after_upgrade", "garbage_handshake", "never_acks", "session_flood")


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

    def __post_init__(self) -> None:
        if self.duration <= 0 or self.sessions < 0:
            raise ValueError("duration must be > 0 and sessions >= 0")
        if self.target is not None:
            u = urlsplit(self.target)
            if u.scheme != "ws" or not u.hostname or not u.port:
                raise ValueError(f"target must look like ws://host:port/, got {self.target!r}")
        if self.max_sessions is None and self.target is None:
            self.max_sessions = self.sessions + 64


@dataclass
class Sample:
    t: float
    rss: int | None
    fds: int | None
    tasks: int | None
    sessions: int | None
    connections: int | None
    buffered_bytes: int | None


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

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        cmd = [sys.executable, "-m", "statemodel.soak.server", "--port", "0", "--interval", "0.5",
               "--max-sessions", str(self.cfg.max_sessions), "--session-ttl", str(self.cfg.session_ttl)]
        async with trio.open_nursery() as nursery:
            self.proc = await nursery.start(
                lambda task_status: trio.run_process(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                                     check=False, task_status=task_status))
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
                    raise RuntimeError(f"soak server exited (code {self.proc.poll()})")
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

    def stop(self) -> None:
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


async def _attack_loop(ctx: AttackContext, names: tuple[str, ...], every: float, result: SoakResult,
                       flood_lock: trio.Lock) -> None:
    """A flood fills the server on purpose: other attacks wait for it (else they get 4009)."""
    while True:
        await trio.sleep(every)
        name = ctx.rng.choice(names)
        exclusive = name == "session_flood" or "session_flood" not in names
        with trio.move_on_after(ctx.limits.dead_after * 2 + 60):  # an attack must never hang the soak
            if exclusive:
                async with flood_lock:
                    _tally(result, await run_attack(name, ctx))
            else:
                _tally(result, await run_attack(name, ctx))


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
    rng = random.Random(cfg.seed)
    server = ServerProcess(cfg) if cfg.target is None else None
    async with trio.open_nursery() as root:
        if server is not None:
            await root.start(server.run)
            host, port = "127.0.0.1", server.port
            limits = Limits.of(soak_config(cfg.max_sessions, cfg.session_ttl))
            await trio.sleep(1.0)  # one more stats line: the idle baseline
            base_rss, base_fds = _measure(server.pid)
            result.figures.update(baseline_fds=base_fds, baseline_tasks=server.stats.get("tasks"),
                                  baseline_rss_mib=round((base_rss or 0) / MiB, 1))
        else:
            u = urlsplit(cfg.target)
            host, port = u.hostname, u.port
            limits = Limits() if cfg.max_sessions is None else Limits(max_sessions=cfg.max_sessions)

        async def direct_dial():
            return await trio.open_tcp_stream(host, port)

        t0 = trio.current_time()
        stop = trio.Event()
        honest = HonestStats()

        def sample() -> None:
            rss, fds = _measure(server.pid if server else None)
            s = server.stats if server else {}
            result.samples.append(Sample(round(trio.current_time() - t0, 2), rss, fds, s.get("tasks"),
                                         s.get("sessions"), s.get("connections"), s.get("buffered_bytes")))
            if progress is not None:
                progress(result.samples[-1], honest)

        interval = max(1.0, cfg.duration / 360)
        ctx = AttackContext(direct_dial, limits, timeout=10.0, victims=list, rng=random.Random(cfg.seed + 1))
        flood_ok = limits.max_sessions <= 2048
        slow = tuple(n for n in SLOW if cfg.slow_attacks and (n != "session_flood" or flood_ok))
        async with trio.open_nursery() as work:
            if cfg.hostile_only:
                work.start_soon(_hostile_only, ctx, slow, cfg, result, stop)
            else:
                proxy = FaultProxy((host, port), seed=cfg.seed, record_bytes=False)
                await work.start(proxy.serve)
                async with trio.open_nursery() as clients:
                    for i in range(cfg.sessions):
                        clients.start_soon(honest_session, i, proxy.connect, Config(), cfg.seed, honest, stop)
                    work.start_soon(_fault_loop, proxy, random.Random(cfg.seed + 2), cfg, result.faults)
                    if cfg.hostile:
                        flood_lock = trio.Lock()
                        work.start_soon(_attack_loop, ctx, QUICK, cfg.attack_every, result, flood_lock)
                        slow_ctx = AttackContext(direct_dial, limits, 10.0, list, random.Random(cfg.seed + 3))
                        if slow:
                            work.start_soon(_attack_loop, slow_ctx, slow, cfg.slow_attack_every, result, flood_lock)
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
            if cfg.hostile_only:
                await stop.wait()
            work.cancel_scope.cancel()
        result.honest = {k: v for k, v in asdict(honest).items() if k != "violations"}
        result.failures[:0] = honest.violations[:20]
        if server is not None:
            await _settle(server, cfg, result, sample)
            result.failures.extend(server.stalls)
            _trend(result.samples, cfg, result)
            server.stop()
        root.cancel_scope.cancel()
    result.passed = not result.failures
    return result


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
