"""What a newcomer reads: `--version`, help texts in one style with their defaults shown, one
error-line style, and the files a package is expected to ship."""

from __future__ import annotations

import argparse
import importlib.metadata
import re
from pathlib import Path

import pytest

import statemodel
from statemodel.cli import SUBCOMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_version_is_the_installed_one(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"statemodel {importlib.metadata.version('statemodel')}"
    assert statemodel.__version__ == importlib.metadata.version("statemodel")


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_texts_are_sentences_and_show_their_defaults(command):
    parser = _subparsers()[command]
    assert re.match(r"[A-Z].*\.$", parser.description or ""), parser.description
    for action in parser._actions:
        if action.help in (None, argparse.SUPPRESS) or isinstance(action, argparse._HelpAction):
            continue
        where = f"statemodel {command} {'/'.join(action.option_strings) or action.dest}"
        assert action.help[0].isupper(), f"{where}: help should start with a capital: {action.help!r}"
        has_default = action.default not in (None, False, [], argparse.SUPPRESS) and action.option_strings
        if has_default:
            assert "default" in action.help, f"{where}: help does not show its default {action.default!r}"


def test_the_defaults_the_issue_named_are_shown():
    sub = _subparsers()
    helps = {(c, a.dest): a.help for c, p in sub.items() for a in p._actions}
    assert "default demo" in helps[("serve", "app")]
    assert "default: no control API" in helps[("proxy", "control")]
    assert "default 0" in helps[("soak", "seed")]


@pytest.mark.parametrize("argv", [
    ["fuzz", "--mutant", "nosuch", "--examples", "1"],
    ["fuzz", "--db", "/proc/nope", "--examples", "1"],
    ["replay", "/nonexistent/failure-1"],
    ["serve", "--port", "99999"],
    ["mutants", "--budget", "0"],
    ["soak", "--sessions", "0"],
    ["proxy", "--upstream", "nonsense"],
], ids=lambda a: " ".join(a[:2]))
def test_every_error_line_has_one_prefix(argv, capsys, monkeypatch):
    monkeypatch.delenv("STATEMODEL_MACHINE", raising=False)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusal
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert errors and all(line.startswith(f"statemodel {argv[0]}: error: ") for line in errors), err


def test_the_package_ships_a_license_type_information_and_ignores_its_outputs():
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert importlib.metadata.metadata("statemodel")["License"] == "MIT"
    assert (Path(statemodel.__file__).parent / "py.typed").is_file()
    ignored = (ROOT / ".gitignore").read_text().split()
    for pattern in ("/out/", "/reports/", ".venv/", "/fuzz-report/"):
        assert pattern in ignored


def test_the_readme_command_table_names_every_option_of_each_command():
    """`--help` and the README's table agree: an option missing there is one a reader never
    learns of (bench --seed, proxy --seed/--byte-trace, mutants --seed were). A row may defer
    the rest to `--help` by saying so."""
    readme = (ROOT / "README.md").read_text()
    for name, parser in _subparsers().items():
        [row] = [line for line in readme.splitlines() if line.startswith(f"| `statemodel {name}")]
        if f"`statemodel {name} --help`" in row:
            continue
        options = [o for a in parser._actions if a.help != argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)
                   for o in a.option_strings if o.startswith("--")]
        assert [o for o in options if o not in row] == [], f"README row of `statemodel {name}`"
