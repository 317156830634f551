"""The reference server in its own process, as a third party's server would run.

``statemodel serve --app script`` on a free loopback port: the benches and the tests that
need a ws:// target start it here.
"""

from __future__ import annotations

import re
import select
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def script_server(*mutants: str, start_timeout: float = 30.0) -> Iterator[str]:
    """Yield the ws:// URL of ``statemodel serve --app script`` (with ``mutants`` switched on)."""
    args = [sys.executable, "-m", "statemodel", "serve", "--app", "script", "--host", "127.0.0.1", "--port", "0"]
    for name in mutants:
        args += ["--mutant", name]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], start_timeout)
        line = proc.stdout.readline() if ready else ""
        match = re.search(r"ws://127\.0\.0\.1:\d+/", line)
        if match is None:
            proc.kill()
            raise RuntimeError(f"statemodel serve did not start: {line!r} {proc.stderr.read()!r}")
        yield match.group(0)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Terminate ``proc``; kill it if it has not exited within ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)
