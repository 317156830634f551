"""The fuzz command's contract on generated command lines (boundary and hostile values of
every option, in any combination): a bad one is refused before anything runs, as exit 2 with
one line `statemodel fuzz: error: …` (naming the option when argparse refuses it), never a
traceback; a good one yields a config that runs what was asked. The run itself is left out
(the e2e tests run it): everything checked before it runs here, with the real parts (argparse,
the machine's options, the target preflight on loopback, directories, Redis URLs)."""

from __future__ import annotations

import io
import socket
from contextlib import redirect_stderr

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from statemodel.cli import build_parser
from statemodel.cli.fuzz import checked_config

HOSTILE_NUMBERS = ["0", "-1", "1e3", "", " ", "x", "nan", "inf", "-inf", "1e-9", "0x10", "\u0663", "1_000"]
PATHS = ["{tmp}/d b \u00e9", "{tmp}/new/deeper"]
BAD_PATHS = ["{tmp}/a-file", "{tmp}/a-file/sub", "", " ", "/proc/nope/x"]
# option: (values a user may mean, boundary and hostile values)
VALUES = {
    "--examples": (["1", "2", "3"], HOSTILE_NUMBERS + ["99999999999999999999999"]),
    "--duration": (["0.5", "1"], HOSTILE_NUMBERS),
    "--shrink-budget": (["0", "0.5", "60"], HOSTILE_NUMBERS),
    "--seed": (["0", "1", "99999999999999999999999"], HOSTILE_NUMBERS),
    "--workers": (["1", "2", "3"], ["0", "-3", "x", ""]),
    "--db": (PATHS, BAD_PATHS + ["redis://{closed}/0", "redis://", "redis://127.0.0.1:notaport/0"]),
    "--report": (PATHS, BAD_PATHS),
    "--target": (["reference"], ["", "ws://{closed}/", "ws://", "http://127.0.0.1:1/", "foo", "nosuch.module:f",
                                 "statemodel:nope", "statemodel:__version__", "WS://{closed}/", "ws://{closed}/a b",
                                 "ws://{closed}/#shared=0", "ws://[::1/"]),
    "--transport": (["sim"], ["tcp", "udp", ""]),
    "--mutant": (["no_dedupe", " no_dedupe ", "no_dedupe,replay_skips_first"], ["", ",", "nope", "no_dedupe,,x"]),
    "--profile": (["dev", "ci", "hunt"], ["replay", "nope", ""]),
}


@st.composite
def command_lines(draw) -> list[str]:
    """Options a user may combine, with at most one boundary or hostile value among them."""
    options = draw(st.lists(st.sampled_from(sorted(VALUES)), unique=True, max_size=6))
    hostile = draw(st.sampled_from([None, *options]))
    if {"--examples", "--duration"} <= set(options) and hostile is None:  # exclusive: one is a usage error
        options.remove(draw(st.sampled_from(["--examples", "--duration"])))
    argv = ["fuzz"]
    for option in options:
        good, bad = VALUES[option]
        argv += [option, draw(st.sampled_from(bad if option == hostile else good))]
    return argv


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("contract")
    (tmp / "a-file").write_text("")
    with socket.socket() as held:  # bound, never listening: connections are refused
        held.bind(("127.0.0.1", 0))
        yield {"tmp": str(tmp), "closed": f"127.0.0.1:{held.getsockname()[1]}"}


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=command_lines())
def test_every_fuzz_command_line_runs_or_is_refused_in_one_line(argv, places, monkeypatch):
    monkeypatch.delenv("STATEMODEL_MACHINE", raising=False)
    argv = [a.format(**places) for a in argv]
    err = io.StringIO()
    with redirect_stderr(err):
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # argparse's refusal
            assert exc.code == 2
            last = err.getvalue().strip().splitlines()[-1]
            assert last.startswith("statemodel fuzz: error: argument "), last
            named = last.removeprefix("statemodel fuzz: error: argument ").split(":")[0].split("/")
            assert any(option in argv for option in named), (argv, last)
            event("refused by argparse")
            return
        config, why_not = checked_config(args)  # anything raised here is a traceback for the user
    if config is None:
        assert why_not and "\n" not in why_not and "Traceback" not in why_not, why_not
        event("refused before the run")
        return
    assert "Traceback" not in err.getvalue()
    event("runs")
    # what runs is what was asked
    if args.examples is not None:
        assert config.examples == args.examples and 1 <= config.workers <= args.examples
    assert config.seed >= 0 and (args.seed is None or config.seed == args.seed)
    assert config.profile == args.profile and (config.db is None) == (args.db is None)
    assert config.profile != "replay" or config.db  # it generates nothing: without a database, nothing runs
    for name in args.mutant:
        assert set(name) <= set(config.mutants)
