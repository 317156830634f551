"""A bad --target/--transport pair is a usage error (exit 2) before any example runs."""

import pytest

from statemodel.cli import main


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--target", "ws://127.0.0.1:9/"], "needs --transport tcp"),
        (["--target", "bogus"], "unknown target 'bogus'"),
    ],
)
def test_bad_target_is_exit_2_with_a_clear_message(argv, message, capsys, monkeypatch):
    monkeypatch.delenv("STATEMODEL_MACHINE", raising=False)
    assert main(["fuzz", "--examples", "1", *argv]) == 2
    assert message in capsys.readouterr().err
