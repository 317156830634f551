"""Every code block of README.md runs as shown (issue 13 item 8).

The rule, for each fenced block:

- It has a language: ``python`` and ``sh`` blocks are run, ``text`` blocks are not code.
- ``python``: the block is saved to a file and run with this interpreter (or, with
  ``file "NAME"``, saved as NAME for a later block to use). ``sh``: each command (a line, with
  ``\\`` continuations) runs in bash; a command ending in ``&`` runs in the background until
  the block ends.
- Blocks run in order in one scratch directory, as a reader would follow them, with this
  virtualenv's ``statemodel``, ``python`` and ``pytest`` on PATH.
- An HTML comment right above a block, ``<!-- readme-check: … -->``, may state how it is
  checked; anything not stated there must hold as shown (every command exits 0):
  ``exit C…`` (exit codes, one per command), ``expect "TEXT"`` (in the output),
  ``replace "OLD" "NEW"`` (a scaled-down form: an hour becomes seconds, a hostname the test's
  Redis; the replacement is stated in the README itself, next to the block),
  ``free-port N`` (port N is a free port here: other tests may hold the README's),
  ``serve N`` (a ``statemodel serve`` runs on port N during the block), ``file "NAME"``,
  ``needs redis`` (skipped without STATEMODEL_REDIS_URL, and said so at the end of the run),
  ``cwd repo`` (run in the repository, e.g. a pytest command that collects our suite),
  ``skip "REASON"`` (checked elsewhere: the reason says where), ``note "…"`` (why the form is
  what it is).

What no block here does: install the package (``test_quickstart_on_a_fresh_clone``, marked slow,
clones the repository and runs the quickstart's two commands exactly as written).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
FENCE = re.compile(r"(?:<!--\s*readme-check:(?P<check>.*?)-->\s*\n)?```(?P<lang>[^\n]*)\n(?P<body>.*?)\n```",
                   re.S)
RUN_TIMEOUT = 240


@dataclass
class Block:
    index: int
    line: int
    heading: str
    lang: str
    body: str
    checks: list[list[str]] = field(default_factory=list)

    def get(self, name: str) -> list[list[str]]:
        return [c[1:] for c in self.checks if c[0] == name]

    @property
    def id(self) -> str:
        return f"{self.index}-{re.sub(r'[^a-z0-9]+', '-', self.heading.lower()).strip('-')}-L{self.line}"


def _checks(text: str) -> list[list[str]]:
    """``a "b c"; d e`` -> [["a", "b c"], ["d", "e"]] (quotes may hold ';')."""
    lex = shlex.shlex(text, posix=True, punctuation_chars=";")
    lex.whitespace_split = True
    out: list[list[str]] = [[]]
    for token in lex:
        if token == ";":
            out.append([])
        else:
            out[-1].append(token)
    return [c for c in out if c]


def blocks() -> list[Block]:
    text = README.read_text()
    out = []
    for n, m in enumerate(FENCE.finditer(text)):
        line = text.count("\n", 0, m.start("lang")) + 1
        heading = ([h for h in re.findall(r"^## (.+)$", text[: m.start()], re.M)] or ["top"])[-1]
        checks = _checks(m.group("check") or "")
        out.append(Block(n, line, heading, m.group("lang").strip(), m.group("body"), checks))
    return out


BLOCKS = blocks()
KNOWN = {"exit", "expect", "replace", "free-port", "serve", "file", "needs", "cwd", "note", "skip"}


def test_every_block_says_what_it_is_and_every_check_is_known():
    assert BLOCKS, "no code blocks found in README.md"
    for b in BLOCKS:
        assert b.lang in ("python", "sh", "text"), f"README.md line {b.line}: block language {b.lang!r}"
        for c in b.checks:
            assert c and c[0] in KNOWN, f"README.md line {b.line}: unknown readme-check {c}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server for the block exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def _commands(body: str) -> list[str]:
    out, current = [], ""
    for line in body.splitlines():
        if current:
            current += "\n" + line
        elif line.strip() and not line.lstrip().startswith("#"):
            current = line
        else:
            continue
        if not current.endswith("\\"):
            out.append(current)
            current = ""
    if current:
        out.append(current)
    return out


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """One directory for the whole README, as a reader's project; a 2-example profile for
    the pytest-collection block (see its readme-check)."""
    base = tmp_path_factory.mktemp("readme")
    (base / "conftest.py").write_text(
        "from hypothesis import settings\n"
        "from statemodel import profiles\n\n"
        "settings.register_profile('readme', settings.get_profile('ci'), max_examples=2, stateful_step_count=10)\n")
    return base


def _params():
    out = []
    for b in BLOCKS:
        marks = []
        if b.lang == "text":
            marks.append(pytest.mark.skip(reason="not code"))
        for (reason,) in b.get("skip"):
            marks.append(pytest.mark.skip(reason=reason))
        if ["redis"] in b.get("needs"):
            marks += [pytest.mark.redis, pytest.mark.skipif(not os.environ.get("STATEMODEL_REDIS_URL"),
                                                            reason="STATEMODEL_REDIS_URL is unset")]
        out.append(pytest.param(b, id=b.id, marks=marks))
    return out


@pytest.mark.parametrize("block", _params())
def test_readme_block_runs_as_shown(block: Block, scratch: Path):
    body = block.body
    for old, new in block.get("replace"):
        assert old in body, f"README.md line {block.line}: replace {old!r}: not in the block"
        body = body.replace(old, new)
    for (port,) in block.get("free-port"):
        body = re.sub(rf"\b{port}\b", str(_free_port()), body)
    serve_ports = []
    for (port,) in block.get("serve"):
        free = _free_port()
        body = re.sub(rf"\b{port}\b", str(free), body)
        serve_ports.append(free)
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONUNBUFFERED="1")
    env.pop("STATEMODEL_MACHINE", None)
    cwd = ROOT if ["repo"] in block.get("cwd") else scratch
    expected_exits = [int(c) for codes in block.get("exit") for c in codes]
    servers = []
    output = ""
    try:
        for port in serve_ports:
            proc = subprocess.Popen([str(BIN / "statemodel"), "serve", "--port", str(port)], cwd=scratch, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            servers.append(proc)
            _wait_for_port(port, proc)
        if block.lang == "python":
            [name] = (block.get("file") or [[f"readme_block_{block.index}.py"]])[0][:1] or [None]
            (scratch / name).write_text(body + "\n")
            if block.get("file"):
                return  # a file a later block uses
            commands = [f"{shlex.quote(sys.executable)} {name}"]
        else:
            commands = _commands(body)
        exits = []
        for command in commands:
            background = command.rstrip().endswith("&")
            if background:
                servers.append(subprocess.Popen(["bash", "-c", command.rstrip().rstrip("&")], cwd=cwd, env=env,
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                                start_new_session=True))
                continue
            proc = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=cwd, env=env,
                                  capture_output=True, text=True, timeout=RUN_TIMEOUT)
            output += f"$ {command}\n{proc.stdout}{proc.stderr}"
            exits.append(proc.returncode)
        wanted = expected_exits or [0] * len(exits)
        assert exits == wanted, f"README.md line {block.line}: exit codes {exits}, expected {wanted}\n{output[-6000:]}"
        for (text,) in block.get("expect"):
            assert text in output, f"README.md line {block.line}: {text!r} not in the output\n{output[-6000:]}"
    finally:
        for proc in servers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)


@pytest.mark.slow
def test_quickstart_on_a_fresh_clone(tmp_path):
    """The quickstart's two commands exactly as written, in a fresh clone (installs from PyPI);
    the second one only collects the suite (running it would run this test again)."""
    [quick] = [b for b in BLOCKS if b.heading == "Install and quickstart" and b.lang == "sh"]
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    first, second = _commands(quick.body)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "STATEMODEL_MACHINE")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(BIN)))
    script = f"set -e\n{first}\n{second} --collect-only -q\n"
    proc = subprocess.run(["bash", "-c", script], cwd=clone, env=env, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "examples 300" in proc.stdout and "failures 0" in proc.stdout
    assert shutil.which("statemodel", path=str(clone / ".venv" / "bin"))
