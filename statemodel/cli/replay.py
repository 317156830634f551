"""`statemodel replay`: re-run a reproducer deterministically and show its timeline."""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
from pathlib import Path

from statemodel.cli.args import error

HELP = ("Re-run a reproducer (failure folder, repro_test.py or trace.json) and print a "
        "step-by-step timeline; exit 1 if it still fails, 0 if it now passes.")


class BadInput(Exception):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH",
                        help="A failure folder written by `statemodel fuzz --report`, or its "
                             "repro_test.py or trace.json")
    parser.add_argument("--html", metavar="OUT",
                        help="Also write the timeline as a self-contained HTML sequence chart")


def load_reproducer(path: Path) -> dict:
    """Machine, options, program (and the earlier recording when known) from PATH."""
    if path.is_dir():
        if (path / "trace.json").is_file():
            path = path / "trace.json"
        elif (path / "repro_test.py").is_file():
            path = path / "repro_test.py"
        else:
            raise BadInput(f"{path} holds neither trace.json nor repro_test.py")
    if not path.is_file():
        raise BadInput(f"{path} does not exist")
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise BadInput(f"{path} is not readable JSON: {exc}") from exc
        if not isinstance(data, dict) or not all(k in data for k in ("machine", "options", "program")):
            raise BadInput(f"{path} is not a statemodel trace.json (needs machine, options, program)")
        if not isinstance(data["program"], str) or not isinstance(data["options"], dict):
            raise BadInput(f"{path} holds no runnable step program")
        _check_fields(path, data)
        return data
    if path.suffix == ".py":
        spec = importlib.util.spec_from_file_location("statemodel_repro", path)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.parent))
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise BadInput(f"cannot load {path}: {type(exc).__name__}: {exc}") from exc
        finally:
            sys.path.remove(str(path.parent))
        try:
            data = {"machine": module.MACHINE, "options": module.OPTIONS, "program": module.PROGRAM,
                    "error": dict(zip(("type", "message"), module.EXPECTED_ERROR))}
        except (AttributeError, TypeError) as exc:
            raise BadInput(f"{path} is not a statemodel reproducer ({exc})") from exc
        if not isinstance(data["program"], str) or not isinstance(data["options"], dict):
            raise BadInput(f"{path} holds no runnable step program (PROGRAM a string, OPTIONS a dict)")
        _check_fields(path, data)
        return data
    raise BadInput(f"{path}: expected a folder, repro_test.py or trace.json")


def _check_fields(path: Path, data: dict) -> None:
    """A hand-edited trace.json gets a one-line error naming the field, not a traceback."""
    opts = data["options"]
    text = lambda v: isinstance(v, str)  # noqa: E731
    names = lambda v: isinstance(v, list) and all(map(text, v))  # noqa: E731
    for field, value, ok, what in (("machine", data["machine"], text, "a string"),
                                   ("options.target", opts.get("target", ""), text, "a string"),
                                   ("options.transport", opts.get("transport", ""), text, "a string"),
                                   ("options.mutants", opts.get("mutants", []), names, "a list of names")):
        if not ok(value):
            raise BadInput(f"{path}: {field} must be {what}, got {json.dumps(value)}")


def _preflight(loaded, options) -> None:
    """A ws:// reproducer whose server is down is an error of the replay (exit 2), as for
    `fuzz`: without this the dead server "failed" the program with recovery within bound."""
    from statemodel.fuzz.machine import DEFAULT_MACHINE
    from statemodel.target import check_target
    from statemodel.target.preflight import preflight

    if loaded.spec == DEFAULT_MACHINE:
        check_target(options)
        preflight(options)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from statemodel.fuzz.machine import MachineUnavailable, build_options, load_machine
    from rich.markup import escape

    from statemodel.record import Recorder, canonical, failure_record, with_violation
    from statemodel.report.console import print_timeline
    from statemodel.report.program import ProgramError, error_summary, run_program
    from statemodel.report.timeline import render_html
    from statemodel.target.preflight import TargetUnavailable

    console = Console(soft_wrap=True)
    try:
        data = load_reproducer(Path(args.path))
        loaded = load_machine(data["machine"])
        opts = data["options"]
        options = build_options(loaded, opts.get("target", "reference"), opts.get("transport", "sim"),
                                opts.get("mutants", ()), record=True)
        try:
            cls = loaded.machine_class(options)
        except (TypeError, ValueError, KeyError) as exc:  # e.g. a mutant this build does not have
            raise MachineUnavailable(f"the machine rejected the reproducer's options: {exc}") from exc
        _preflight(loaded, options)
        with Recorder.paused():
            outcome = run_program(cls, data["program"])
    except (BadInput, MachineUnavailable, ProgramError, TargetUnavailable, ValueError) as exc:
        return error("replay", str(exc))
    recorder = getattr(outcome.state, "recorder", None)
    recording = recorder.to_json() if recorder is not None else None
    summary = error_summary(outcome.error) if outcome.error else None
    record = failure_record(outcome.error, recorder) if outcome.error else None
    if recording is not None and record is not None:
        recording = with_violation(recording, record)
    console.print(f"[bold]replay[/] {args.path}: {data['machine']} {json.dumps(opts, sort_keys=True)}",
                  highlight=False)
    if recording is not None:
        print_timeline(recording, console, summary)
        old = data.get("recording_digest")
        new = hashlib.sha256(canonical(recording).encode()).hexdigest()
        if old:
            same = "identical to" if old == new else "DIFFERENT from"
            why = ""
            if old != new:
                why = (" (real sockets: timing differs run to run)" if opts.get("transport", "sim") != "sim"
                       else " (it no longer fails: the code it ran has changed)" if outcome.error is None
                       else " (a sim replay must be bit for bit: this is a bug, please report it)")
            console.print(f"recording {new[:16]}… is {same} the fuzz run's ({old[:16]}…){why}", highlight=False)
    else:
        console.print("(the machine recorded nothing; showing the program)\n" + data["program"],
                      markup=False, highlight=False)
    if args.html:
        trace = dict(data, recording=recording)
        if outcome.error is not None:
            trace["error"] = {"type": summary[0], "message": summary[1]}
            trace["invariant"] = record
        else:
            trace["error"], trace["invariant"] = None, None
        try:
            Path(args.html).write_text(render_html(trace))
        except OSError as exc:
            return error("replay", f"cannot write {args.html}: {exc}")
        console.print(f"timeline written to {args.html}", highlight=False)
    if outcome.error is None:
        console.print("[bold green]PASSED[/]: the program no longer fails "
                      "(the bug may be fixed, or the failure depended on something else)")
        return 0
    console.print(f"[bold red]FAILED[/]: {escape(record['title'])}", highlight=False)
    expected = data.get("error") or {}
    if expected and (expected.get("type"), expected.get("message")) != summary:
        console.print(f"note: the fuzz run failed with {expected.get('type')}: {expected.get('message')}",
                      highlight=False)
    return 1
