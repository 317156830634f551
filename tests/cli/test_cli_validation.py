"""Every CLI path either works or says why: mutant names, example databases, ports and
addresses are checked before anything runs (exit 2, `statemodel CMD: error: …`)."""

from __future__ import annotations

import json
import os
import socket

import pytest

from statemodel.cli import main
from statemodel.fuzz.database import DatabaseError, open_database


@pytest.fixture(autouse=True)
def _real_machine(monkeypatch):
    monkeypatch.delenv("STATEMODEL_MACHINE", raising=False)


def _usage_error(argv, capsys) -> str:
    """argparse's own refusal: SystemExit(2) with `statemodel CMD: error:` on stderr."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"statemodel {argv[0]}: error:" in err
    return err


# ---- mutant names ---------------------------------------------------------------------------

def test_fuzz_refuses_an_unknown_mutant_before_running_anything(capsys):
    assert main(["fuzz", "--examples", "1", "--mutant", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("statemodel fuzz: error:") and "unknown mutant(s) nosuch" in err
    assert "no_dedupe" in err  # the known names are listed


def test_fuzz_refuses_an_unknown_mutant_in_a_comma_list(capsys):
    assert main(["fuzz", "--examples", "1", "--mutant", "no_dedupe,bogus"]) == 2
    assert "unknown mutant(s) bogus" in capsys.readouterr().err


def test_replay_of_a_trace_naming_an_unknown_mutant_is_an_error_not_a_pass(tmp_path, capsys):
    trace = {"machine": "statemodel.machine:machine_class",
             "options": {"target": "reference", "transport": "sim", "mutants": ["nosuch"]},
             "program": "state = StreamMachine_sim_nosuch()\nstate.teardown()"}
    (tmp_path / "trace.json").write_text(json.dumps(trace))
    assert main(["replay", str(tmp_path / "trace.json")]) == 2
    captured = capsys.readouterr()
    assert "PASSED" not in captured.out
    assert captured.err.startswith("statemodel replay: error:") and "unknown mutant(s) nosuch" in captured.err


@pytest.mark.parametrize("argv", [
    ["serve", "--mutant", "nosuch"],
    ["mutants", "nosuch"],
    ["mutants", "no_dedupe,nosuch"],
], ids=["serve", "mutants", "mutants-comma"])
def test_every_command_taking_a_mutant_name_validates_it(argv, capsys):
    assert "unknown mutant(s) nosuch" in _usage_error(argv, capsys)


def test_machine_options_validate_mutants_for_every_caller():
    from statemodel.machine import MachineOptions

    with pytest.raises(ValueError, match="unknown mutant"):
        MachineOptions(mutants=frozenset({"no_dedupe", "typo"}))
    assert MachineOptions(mutants=frozenset({"no_dedupe"})).mutants == {"no_dedupe"}


# ---- the example database -------------------------------------------------------------------

@pytest.mark.parametrize("spec, reason", [
    ("/proc/nope", "No such file or directory"),
    ("/etc/hostname", "not a directory"),
], ids=["not-creatable", "a-file"])
def test_fuzz_refuses_a_database_it_cannot_write(spec, reason, capsys):
    assert main(["fuzz", "--examples", "1", "--db", spec]) == 2
    err = capsys.readouterr().err
    assert err.startswith("statemodel fuzz: error:") and f"cannot use {spec!r}" in err and reason in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_database_directory_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(DatabaseError, match="Permission denied"):
        open_database(str(ro), "ns")


def test_a_new_database_directory_is_created_and_written_up_front(tmp_path):
    path = tmp_path / "new" / "db"
    assert open_database(str(path), "ns") is not None
    assert path.is_dir() and list(path.iterdir()) == []  # created; the write check left nothing behind


# ---- ports and addresses --------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["serve", "--port", "99999"],
    ["serve", "--port", "-1"],
    ["serve", "--port", "http"],
    ["proxy", "--upstream", "127.0.0.1:65536"],
    ["proxy", "--upstream", "127.0.0.1:80", "--listen", "127.0.0.1:-1"],
    ["proxy", "--upstream", "127.0.0.1:80", "--control", "127.0.0.1:99999"],
    ["proxy", "--upstream", "no-port"],
    ["proxy", "--upstream", ":80"],
], ids=lambda a: " ".join(a))
def test_ports_and_addresses_are_validated_by_argparse(argv, capsys):
    assert "0-65535" in _usage_error(argv, capsys)


def test_serve_and_proxy_take_the_port_boundaries(capsys):
    from statemodel.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["serve", "--port", "0"]).port == 0
    assert parser.parse_args(["serve", "--port", "65535"]).port == 65535
    assert parser.parse_args(["proxy", "--upstream", "[::1]:65535"]).upstream == ("::1", 65535)


def test_proxy_reports_a_taken_port_in_one_line(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["proxy", "--listen", f"127.0.0.1:{port}", "--upstream", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"statemodel proxy: error: cannot listen on 127.0.0.1:{port}") and "Traceback" not in err


# ---- the report directory -------------------------------------------------------------------

@pytest.mark.parametrize("name, reason", [
    ("a-file", "it exists and is not a directory"),
    ("a-file/sub", "Not a directory"),
], ids=["a-file", "under-a-file"])
def test_fuzz_refuses_a_report_directory_it_cannot_write_before_running(name, reason, tmp_path, capsys):
    """Checked only at the end, an unwritable --report lost the whole run and its reproducers."""
    (tmp_path / "a-file").write_text("")
    report = tmp_path / name
    assert main(["fuzz", "--examples", "1", "--seed", "1", "--report", str(report)]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines()[-1] == f"statemodel fuzz: error: cannot write the report to {report}: {reason}"
    assert "examples" not in captured.out and "seed 1" not in captured.err  # nothing ran


def test_a_report_directory_of_an_older_run_keeps_no_stale_failure_folders(tmp_path, capsys):
    """A clean run into a report folder that held failure-1 and failure-2 of an older run (one
    replayed with pytest, one with a file of the user's): summary.json says no failures, and no
    failure folder of ours says otherwise; the user's file is kept."""
    out = tmp_path / "out"
    for n in (1, 2):
        folder = out / f"failure-{n}"
        (folder / "__pycache__").mkdir(parents=True)
        for name in ("trace.json", "timeline.html", "repro_test.py", "__pycache__/repro_test.cpython-311.pyc"):
            (folder / name).write_text("{}")
    (out / "failure-2" / "notes.txt").write_text("mine")
    (out / "failure-x").mkdir()
    assert main(["fuzz", "--examples", "1", "--seed", "1", "--report", str(out)]) == 0
    capsys.readouterr()
    assert json.loads((out / "summary.json").read_text())["failures"] == []
    assert not (out / "failure-1").exists()
    assert (out / "failure-2" / "notes.txt").read_text() == "mine"  # not only ours: left whole
    assert (out / "failure-x").is_dir()


# ---- seeds and mutant names that ran something else than asked ------------------------------

@pytest.mark.parametrize("argv", [
    ["fuzz", "--examples", "1", "--seed", "-5"],
    ["bench", "--quick", "--seed", "-5"],
    ["mutants", "--seed", "-5"],
    ["soak", "--duration", "1", "--sessions", "1", "--seed", "-5"],
    ["proxy", "--upstream", "127.0.0.1:9", "--seed", "-5"],
], ids=["fuzz", "bench", "mutants", "soak", "proxy"])
def test_a_negative_seed_is_refused_it_would_repeat_its_positive_twin(argv, capsys):
    """random.Random(-5) is random.Random(5): `fuzz --seed -5` printed seed -5 and ran seed 5's
    examples (the same trace_digest)."""
    assert "argument --seed: must be 0 or more, got -5" in _usage_error(argv, capsys)


def test_a_negative_seed_did_repeat_its_positive_twin():
    """Why the above: the seeding the fuzz batches use cannot tell -5 from 5."""
    import random

    assert random.Random(-5).random() == random.Random(5).random()


@pytest.mark.parametrize("value", ["", " , ", ","])
def test_fuzz_refuses_an_empty_mutant_name_instead_of_fuzzing_without_one(value, capsys):
    assert "argument --mutant: expected a mutant name" in _usage_error(["fuzz", "--examples", "1", "--mutant", value], capsys)


def test_the_replay_profile_without_a_database_is_refused(capsys):
    """It generates nothing: without --db it ran 0 examples and exited 0, as if all was well."""
    assert main(["fuzz", "--profile", "replay"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("statemodel fuzz: error: --profile replay generates nothing") and "--db" in err


def test_the_replay_profile_on_an_empty_database_says_there_was_nothing_to_replay(tmp_path, capsys):
    assert main(["fuzz", "--profile", "replay", "--db", str(tmp_path / "db")]) == 0
    err = capsys.readouterr().err
    assert "worker 0: nothing to replay: the example database holds no saved example" in err
    assert "Hypothesis has been told" not in err


@pytest.mark.parametrize("option", ["--db", "--report"])
def test_an_empty_db_or_report_path_is_refused_not_taken_as_none(option, capsys):
    """`--report "$OUT"` with OUT unset wrote no report, and `--db ""` used no database, silently."""
    err = _usage_error(["fuzz", "--examples", "1", option, ""], capsys)
    assert f"argument {option}: expected a path or URL, got an empty string" in err


def test_serve_refuses_an_empty_host(capsys):
    assert "argument --host: expected a host name or address" in _usage_error(["serve", "--host", ""], capsys)


@pytest.mark.parametrize("spec", ["s3://bucket/db", "http://127.0.0.1:9/db"])
def test_a_database_url_of_an_unknown_scheme_is_refused_not_made_a_directory(spec, tmp_path, monkeypatch):
    """`--db s3://bucket/db` created the local directory tree ./s3:/bucket/db and used it."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatabaseError, match="unknown scheme"):
        open_database(spec, "ns")
    assert list(tmp_path.iterdir()) == []


def test_a_redis_url_in_capitals_is_redis_not_a_local_directory(tmp_path, monkeypatch):
    """`--db REDIS://host:port/0` became the local directory REDIS:/host:port/0: each host of a
    multi-host run kept its own database, silently. Here nothing listens at the URL."""
    monkeypatch.chdir(tmp_path)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        with pytest.raises(DatabaseError, match="cannot reach Redis"):
            open_database(f"REDIS://127.0.0.1:{held.getsockname()[1]}/0", "ns")
    assert list(tmp_path.iterdir()) == []


def test_a_unix_socket_redis_url_reaches_redis_as_written(tmp_path):
    """urlunsplit turned unix:///path into unix:/path, which redis refuses as a URL."""
    with pytest.raises(DatabaseError) as info:
        open_database(f"unix://{tmp_path}/redis.sock?prefix=x", "ns")
    assert f"cannot reach Redis at unix://{tmp_path}/redis.sock:" in str(info.value)
    assert "must specify one of the following schemes" not in str(info.value)


def test_a_factory_target_naming_something_not_callable_is_a_usage_error(capsys):
    """`--target statemodel:__version__` raised load_factory's TypeError as a traceback, exit 1."""
    assert main(["fuzz", "--examples", "1", "--target", "statemodel:__version__"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("statemodel fuzz: error: factory target 'statemodel:__version__': '__version__' is a "
                           "str, not a callable")
