"""Run a fuzz config on N worker processes sharing one example database; merge results.

Workers are ``multiprocessing`` spawn processes with seeds ``seed, seed+1, …``. Ctrl-C
(SIGINT to the process group, or to the parent alone, which sets a shared stop event)
makes each worker stop between examples and send back what it has; a time-out does the
same after a grace period, and stragglers are terminated so the command never hangs.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing as mp
import queue as queue_mod
import signal
import time

from statemodel.fuzz.config import FuzzConfig, FuzzResult, WorkerResult
from statemodel.fuzz.progress import Progress
from statemodel.fuzz.runner import run_worker, worker_seed

GRACE = 30.0  # seconds past --duration before workers are interrupted
COLLECT_TIMEOUT = 30.0  # seconds to wait for results after an interrupt


def combine_digests(results: list[WorkerResult]) -> str:
    text = "\n".join(f"{r.worker}:{r.trace_digest}" for r in sorted(results, key=lambda r: r.worker))
    return hashlib.sha256(text.encode()).hexdigest()


def _safe_run(config: FuzzConfig, worker: int, progress, should_stop) -> WorkerResult:
    try:
        return run_worker(config, worker, progress, should_stop)
    except KeyboardInterrupt:
        return WorkerResult(worker=worker, seed=worker_seed(config, worker), interrupted=True)
    except Exception as exc:  # infrastructure: reported per worker, never a traceback
        return WorkerResult(worker=worker, seed=worker_seed(config, worker),
                            error=f"{type(exc).__name__}: {exc}")


class StopFlag:
    """SIGINT handler: the first Ctrl-C asks for a stop between examples, a second one interrupts."""

    def __init__(self, event=None):
        self.event = event
        self.seen = False

    def __call__(self, signum=None, frame=None) -> None:
        if self.seen:
            raise KeyboardInterrupt
        self.seen = True

    def is_set(self) -> bool:
        return self.seen or (self.event is not None and self.event.is_set())


@contextlib.contextmanager
def _stop_signals(flag: StopFlag):
    """Ctrl-C (SIGINT) and a CI runner's SIGTERM both mean: stop between examples, report."""
    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, flag)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def final_snapshot(result: WorkerResult) -> dict:
    """A worker's last progress snapshot, from its result."""
    return {"examples": result.examples, "steps": result.steps, "discarded": result.discarded,
            "shrink_runs": result.shrink_runs,
            "replays": result.replays, "faults": result.faults, "slowest_recovery": result.slowest_recovery,
            "phase": "done", "found": [f.title for f in result.failures]}


def _worker_main(config: FuzzConfig, worker: int, q, stop) -> None:
    flag = StopFlag(stop)
    signal.signal(signal.SIGINT, flag)
    last = [0.0, None]

    def progress(w, snap):
        now = time.monotonic()
        news = (snap.get("phase"), len(snap.get("found") or ()))  # a phase change is sent at once
        if now - last[0] >= 0.5 or news != last[1]:
            last[0], last[1] = now, news
            q.put(("progress", w, snap))

    result = _safe_run(config, worker, progress, flag.is_set)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not lose the result
    q.put(("done", worker, result))


def run(config: FuzzConfig, progress: Progress | None = None) -> FuzzResult:
    started = time.monotonic()
    if config.workers <= 1:
        cb = progress.update if progress else None
        flag = StopFlag()
        with _stop_signals(flag):
            result = _safe_run(config, 0, cb, flag.is_set)
        if progress:
            progress.update(0, final_snapshot(result))
        return FuzzResult(config, [result], combine_digests([result]), time.monotonic() - started)
    return _run_many(config, progress, started)


def _run_many(config: FuzzConfig, progress: Progress | None, started: float) -> FuzzResult:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    stop = ctx.Event()
    procs = {w: ctx.Process(target=_worker_main, args=(config, w, q, stop), daemon=True)
             for w in range(config.workers)}
    # Children inherit an ignored SIGINT until _worker_main installs its handler, so a
    # Ctrl-C during start-up cannot kill one mid-import; the stop event covers that window.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for p in procs.values():
            p.start()
    finally:
        signal.signal(signal.SIGINT, previous)
    results: dict[int, WorkerResult] = {}
    # A failure found at the end of --duration is still shrunk, within its budget.
    hard_deadline = (started + config.duration + (config.shrink_budget or 0) + GRACE
                     if config.duration is not None else None)
    interrupted_at = None

    def interrupt():
        # Workers see the event between examples (a terminal's Ctrl-C also reaches them
        # directly); sending them another SIGINT would count as a second, forcing Ctrl-C.
        stop.set()

    flag = StopFlag()
    with _stop_signals(flag):
        while len(results) < len(procs):
            now = time.monotonic()
            if interrupted_at is None and (
                flag.seen or (hard_deadline is not None and now > hard_deadline)
            ):
                interrupted_at = now
                interrupt()
            if interrupted_at is not None and now - interrupted_at > COLLECT_TIMEOUT:
                break
            try:
                kind, w, payload = q.get(timeout=0.2)
            except queue_mod.Empty:
                dead = [w for w, p in procs.items() if w not in results and not p.is_alive()]
                if dead:
                    time.sleep(0.2)  # let a final message still in the pipe arrive
                    if q.empty():
                        for w in dead:
                            results[w] = WorkerResult(
                                worker=w, seed=worker_seed(config, w),
                                error=f"worker exited with code {procs[w].exitcode}")
                continue
            if kind == "progress":
                if progress:
                    progress.update(w, payload)
                continue
            results[w] = payload
            if progress:
                progress.update(w, final_snapshot(payload))
    for w, p in procs.items():
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
            p.join(timeout=5)
        if w not in results:
            results[w] = WorkerResult(worker=w, seed=worker_seed(config, w), interrupted=True,
                                      error="worker did not report before the time-out")
    ordered = [results[w] for w in sorted(results)]
    return FuzzResult(config, ordered, combine_digests(ordered), time.monotonic() - started)
