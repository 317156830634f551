"""A headless Chromium driven over the DevTools protocol, for the timeline's browser tests.

Chromium itself (no driver, no download): ``--remote-debugging-port=0`` writes the port to
``DevToolsActivePort`` in the profile directory; a page target is opened over HTTP and spoken
to over its WebSocket with trio-websocket. Every wait is bounded.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import trio
from trio_websocket import open_websocket_url

from statemodel.target.served import stop

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The flags that work on this machine (/work/.library/env/machines/python.md): no sandbox as
# root, and no background networking, which a closed network refuses.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextlib.contextmanager
def chromium(width: int = 1500, height: int = 1100, start_timeout: float = 30.0):
    """A running headless Chromium; yields its DevTools HTTP port."""
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                 f"--window-size={width},{height}", "about:blank"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            active = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + start_timeout
            while not (active.exists() and active.read_text().strip()):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"chromium did not start (exit code {proc.poll()})")
                time.sleep(0.05)
            yield int(active.read_text().split()[0])
        finally:
            stop(proc)
            reap_group(proc.pid)


def reap_group(pgid: int, timeout: float = 10.0) -> None:
    """Kill what is left of Chromium's process group and wait for it to go.

    The browser process exits on SIGTERM before its helpers (renderer, utility, crashpad) do;
    on a loaded host they were still writing to the profile when TemporaryDirectory removed
    it ("Directory not empty: 'Default'", a CI failure). Killed processes write nothing.
    """
    deadline = time.monotonic() + timeout
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
        while time.monotonic() < deadline:
            if all(state == "Z" for state in group_states(pgid)):
                return
            time.sleep(0.02)
        raise RuntimeError(f"chromium's process group {pgid} outlived SIGKILL by {timeout} s")


def group_states(pgid: int) -> list[str]:
    """The state letter of each live process in group ``pgid``, from /proc."""
    fields = (stat_fields(int(entry.name)) for entry in os.scandir("/proc") if entry.name.isdigit())
    return [f[0] for f in fields if f is not None and int(f[2]) == pgid]


def stat_fields(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` after the command name (state, ppid, pgrp, ...); None once gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


class Page:
    def __init__(self, ws) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method: str, **params):
        ident = next(self.ids)
        await self.ws.send_message(json.dumps({"id": ident, "method": method, "params": params}))
        with trio.fail_after(30):
            while True:
                reply = json.loads(await self.ws.get_message())
                if reply.get("id") == ident:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def screenshot(self, clip: dict | None = None) -> bytes:
        params = {"format": "png", "captureBeyondViewport": True}
        if clip is not None:
            params["clip"] = dict(clip, scale=1)
        return base64.b64decode((await self.call("Page.captureScreenshot", **params))["data"])


async def open_page(port: int, url: str):
    """Open ``url`` in a new tab; returns (Page, closer) once the document has loaded."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?{urllib.parse.quote(url, safe='')}",
                                     method="PUT")
    target = json.loads(await trio.to_thread.run_sync(lambda: urllib.request.urlopen(request, timeout=10).read()))
    return target["webSocketDebuggerUrl"]


async def with_page(port: int, url: str, fn):
    """Run ``await fn(page)`` against ``url`` loaded in a fresh tab."""
    ws_url = await open_page(port, url)
    with trio.fail_after(60):
        async with open_websocket_url(ws_url, max_message_size=64 * 2**20) as ws:
            page = Page(ws)
            # A new tab starts on about:blank, which is "complete" before the URL loads.
            loaded = f"location.href === {json.dumps(url)} && document.readyState === 'complete'"
            while not await page.evaluate(loaded):
                await trio.sleep(0.05)
            return await fn(page)
