"""A reference server process running the scripted app, as an external target would be.

A named module, not conftest.py, so that test files can import it unambiguously."""

from __future__ import annotations

import re
import select
import subprocess
import sys
from contextlib import contextmanager



@contextmanager
def script_server(*mutants: str):
    """``statemodel serve --app script`` on a free loopback port; yields its ws:// URL."""
    args = [sys.executable, "-m", "statemodel", "serve", "--app", "script", "--host", "127.0.0.1", "--port", "0"]
    for name in mutants:
        args += ["--mutant", name]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 20.0)
        line = proc.stdout.readline() if ready else ""
        match = re.search(r"ws://127\.0\.0\.1:(\d+)/", line)
        if match is None:
            proc.kill()
            raise RuntimeError(f"statemodel serve did not start: {line!r} {proc.stderr.read()!r}")
        yield f"ws://127.0.0.1:{match.group(1)}/"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
