"""A fuzz worker's memory: keep freed payloads returnable to the kernel, and measure RSS.

Two things held a worker near 1 GiB (issue 14): Hypothesis keeps every result of a run
(its choices, events and statistics, ~0.15 MB per example; the runner bounds a run's
examples), and glibc kept freed multi-MiB payloads. glibc serves a big block from its own
mapping, but each time it frees one it raises that threshold to the block's size (up to
32 MiB), so later payloads came from the heap, whose freed pages it rarely returns: RSS
ended ~100 MiB above the live data. :func:`pin_malloc` fixes the threshold.

:class:`RssMeter` samples the worker's RSS from ``/proc`` once a minute on a daemon thread
(it never touches the machine, so runs stay deterministic) and reports the peak (the
kernel's high-water mark, ``VmHWM``) and the plateau (median of the second half's samples).
"""

from __future__ import annotations

import ctypes
import gc
import os
import statistics
import threading
import time

MMAP_THRESHOLD = 1 << 20  # blocks above this get their own mapping, unmapped when freed
_M_MMAP_THRESHOLD = -3  # malloc.h


def pin_malloc(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold for this process; False where that is not glibc."""
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False


class Sweeper:
    """Frees the last example's garbage before the next example starts.

    A finished machine is garbage in reference cycles (its teardown wrapper, exceptions
    whose tracebacks hold the frames that held a chunk, trio's tasks), payloads and all.
    CPython runs a full collection only once the objects that survived since the last one
    reach a quarter of all long-lived ones, and a Hypothesis run keeps every result, so
    consecutive examples with multi-MiB messages stacked up: 40 MiB each, a worker's peak
    371 MiB at a 188 MiB plateau. A full collection with a run's results tracked costs
    ~90 ms, so everything alive between examples is frozen (``gc.freeze``) and a sweep only
    scans what was allocated since the last one (~4 ms). Use as a context manager around
    one Hypothesis run: leaving it unfreezes (what was frozen is collected normally again).
    """

    def __init__(self, full_every: int = 16) -> None:
        self.full_every = full_every
        self.sweeps = 0

    def __enter__(self) -> "Sweeper":
        gc.collect()
        gc.freeze()
        return self

    def sweep(self) -> None:
        """Collect what was allocated since the last sweep; every ``full_every`` sweeps,
        everything (what was frozen alive and died since: Hypothesis' per-example data)."""
        self.sweeps += 1
        if self.sweeps % self.full_every == 0:
            gc.unfreeze()
        gc.collect()
        gc.freeze()

    def __exit__(self, *exc) -> None:
        gc.unfreeze()
        gc.collect()


def _status_kib(field: str) -> int | None:
    try:
        with open(f"/proc/{os.getpid()}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_mib() -> float | None:
    kib = _status_kib("VmRSS")
    return None if kib is None else kib / 1024


class RssMeter:
    """RSS samples every ``every`` seconds while running (use as a context manager)."""

    def __init__(self, every: float = 60.0) -> None:
        self.every = every
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MiB)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    def __enter__(self) -> "RssMeter":
        self._started = time.monotonic()
        self._sample()
        self._thread = threading.Thread(target=self._run, name="rss-meter", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def _sample(self) -> None:
        mib = rss_mib()
        if mib is not None:
            self.samples.append((time.monotonic() - self._started, mib))

    def summary(self) -> dict:
        """``peak_mib`` (VmHWM), ``plateau_mib`` (median of the second half's samples),
        ``last_mib`` and the sample count; None values where /proc is not readable."""
        hwm = _status_kib("VmHWM")
        values = [mib for _, mib in self.samples]
        late = values[len(values) // 2:]
        return {
            "peak_mib": None if hwm is None else round(hwm / 1024, 1),
            "plateau_mib": round(statistics.median(late), 1) if late else None,
            "last_mib": round(values[-1], 1) if values else None,
            "samples": len(values),
            "every_seconds": self.every,
        }
