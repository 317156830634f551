"""Ctrl-C stops `serve` and `proxy` (their only way to stop) with one line and exit 2.

trio raises the KeyboardInterrupt out of the command's nursery inside an exception group;
`main()` caught only a bare one, so every Ctrl-C printed trio's group traceback and exited 1
(which `fuzz` uses for "a failure was found")."""

from __future__ import annotations

import selectors
import signal
import subprocess
import sys

import pytest
from cli_helpers import cli_env


def _first_line(proc: subprocess.Popen, bound: float = 60.0) -> str:
    """The command's first stdout line (its banner), waiting at most ``bound`` seconds."""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(bound):
            proc.kill()
            pytest.fail(f"no banner within {bound} s: {proc.args}")
    return proc.stdout.readline()


def _banner_then_ctrl_c(argv: list[str], cwd) -> tuple[subprocess.Popen, str, str]:
    """Start ``statemodel argv``, read its banner, press Ctrl-C and wait (bounded; killed if it
    hangs): the process, its first stdout line and its stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "statemodel", *argv], cwd=cwd, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = _first_line(proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc, first, err


@pytest.mark.parametrize("argv, banner", [
    (["serve", "--port", "0", "--app", "script"], "statemodel serve: ws://127.0.0.1:"),
    (["proxy", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:9", "--control", "127.0.0.1:0"],
     "proxy listening on 127.0.0.1:"),
], ids=["serve", "proxy"])
def test_ctrl_c_ends_a_long_running_command_with_one_line_and_exit_2(argv, banner, tmp_path):
    proc, first, err = _banner_then_ctrl_c(argv, tmp_path)
    assert first.startswith(banner)
    assert "Traceback" not in err, err
    assert err.strip() == f"statemodel {argv[0]}: error: interrupted"
    assert proc.returncode == 2


def _ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
@pytest.mark.parametrize("argv, banner", [
    (["serve", "--host", "::1", "--port", "0"], "statemodel serve: ws://[::1]:"),
    (["proxy", "--listen", "[::1]:0", "--upstream", "[::1]:9", "--control", "[::1]:0"],
     "proxy listening on [::1]:"),
], ids=["serve", "proxy"])
def test_an_ipv6_address_is_printed_as_a_url_one_can_use(argv, banner, tmp_path):
    """`serve --host ::1` printed ws://::1:PORT/, which no client (nor `fuzz --target`) parses."""
    _, line, _ = _banner_then_ctrl_c(argv, tmp_path)
    assert line.startswith(banner), line
    if argv[0] == "proxy":
        assert "-> [::1]:9; control on http://[::1]:" in line
