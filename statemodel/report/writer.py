"""Write a fuzz result to a directory: summary.json, junit.xml, failure-<n>/ folders."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import hypothesis

from statemodel.fuzz.config import Failure, FuzzResult
from statemodel.machine.coverage import coverage_table
from statemodel.record import canonical
from statemodel.report.repro import render_repro
from statemodel.report.timeline import render_html


def _duplicate(f: Failure) -> dict:
    return {"title": f.title, "error_type": f.error_type, "message": f.message, "worker": f.worker,
            "seed": f.seed, "program": f.program}


def failure_trace(failure: Failure, duplicates: list[Failure] = ()) -> dict:
    """trace.json: the recording plus what is needed to re-run and explain it."""
    import hashlib

    rec = failure.recording
    return {
        "title": failure.title,
        "shrunk": failure.shrunk,
        "replay_matches": failure.replay_matches,
        "root_cause": list(map(list_or_str, failure.cause)),
        "duplicates": [_duplicate(d) for d in duplicates],
        "machine": failure.machine,
        "options": failure.options,
        "seed": failure.seed,
        "worker": failure.worker,
        "step_count": failure.step_count,
        "error": {"type": failure.error_type, "message": failure.message},
        "invariant": failure.invariant,
        "program": failure.program,
        "blob": list(failure.blob) if failure.blob else None,
        "reproduced": failure.reproduced,
        "unreplayable": failure.unreplayable,
        "traceback": failure.traceback,
        "recording": rec,
        "recording_digest": hashlib.sha256(canonical(rec).encode()).hexdigest() if rec else None,
    }


def list_or_str(value):
    return list(value) if isinstance(value, tuple) else value


def summary(result: FuzzResult, folders: list[str]) -> dict:
    return {
        "seed": result.config.seed,
        "config": result.config.to_json(),
        "hypothesis": hypothesis.__version__,
        "examples": result.examples,
        "steps": result.steps,
        **{k: round(v, 3) for k, v in result.rates.items()},
        # steps over the run's wall time (start-up, shrinking and idle workers included)
        "steps_per_s_wall": round(result.steps / result.elapsed, 3) if result.elapsed > 0 else 0.0,
        "discarded": result.discarded,
        "shrink_runs": result.shrink_runs,
        "replays": result.replays,
        "faults": result.faults,
        "scenarios": coverage_table(result.scenarios, result.examples),
        "slowest_recovery": result.slowest_recovery,
        "memory": result.memory,  # the largest worker's RSS in MiB (peak, plateau)
        # One entry per root cause (statemodel.fuzz.causes); "count" says how many failures
        # Hypothesis, the batches and the workers reported for it.
        "failures": [
            {"title": g[0].title, "error_type": g[0].error_type, "message": g[0].message,
             "invariant": g[0].invariant, "worker": g[0].worker, "seed": g[0].seed,
             "reproduced": g[0].reproduced, "shrunk": g[0].shrunk, "folder": folder,
             "root_cause": list(map(list_or_str, g[0].cause)), "count": len(g),
             "duplicates": [_duplicate(d) for d in g[1:]]}
            for g, folder in zip(result.causes, folders)
        ],
        "workers": [
            {"worker": w.worker, "seed": w.seed, "examples": w.examples, "steps": w.steps,
             "discarded": w.discarded, "shrink_runs": w.shrink_runs, "replays": w.replays, "shrink_seconds": round(w.shrink_seconds, 3),
             "shrink_stopped": w.shrink_stopped,
             "trace_digest": w.trace_digest, "interrupted": w.interrupted, "error": w.error,
             "tester_errors": w.tester_errors,
             "elapsed": round(w.elapsed, 3), "memory": w.memory}
            for w in result.workers
        ],
        "errors": result.errors,
        "interrupted": result.interrupted,
        "exit_code": result.exit_code,
        "elapsed": round(result.elapsed, 3),
        "trace_digest": result.trace_digest,
    }


def junit(result: FuzzResult) -> ET.ElementTree:
    cfg = result.config
    label = f"{cfg.target}[{cfg.transport}" + (f",mutants={'+'.join(cfg.mutants)}" if cfg.mutants else "") + "]"
    suite = ET.Element("testsuite", name="statemodel.fuzz", tests=str(len(result.workers)),
                       failures=str(sum(bool(w.failures) for w in result.workers)),
                       errors=str(sum(bool(w.errors) for w in result.workers)),
                       time=f"{result.elapsed:.3f}")
    for w in result.workers:
        case = ET.SubElement(suite, "testcase", classname=f"statemodel.fuzz.{label}",
                             name=f"worker{w.worker}-seed{w.seed}", time=f"{w.elapsed:.3f}")
        for f in w.failures:
            el = ET.SubElement(case, "failure", message=f.title, type=f.error_type)
            inv = f.invariant
            detail = f"{f.error_type}: {f.message}\n"
            if inv:
                detail += f"expected: {inv['expected']!r}\nactual: {inv['actual']!r}\n"
            el.text = detail + "\n" + (f.program or "")
        if w.errors:
            for message in w.errors:
                ET.SubElement(case, "error", message=message, type="InfrastructureError").text = message
        elif w.interrupted and not w.failures:
            ET.SubElement(case, "skipped", message="interrupted")
        ET.SubElement(case, "system-out").text = (
            f"examples={w.examples} steps={w.steps} trace_digest={w.trace_digest}"
        )
    return ET.ElementTree(suite)


def prepare(directory: str | os.PathLike) -> Path:
    """Create the report directory and write a file in it before the run starts: found only
    at the end, an unwritable ``--report`` cost the whole run (an hour, at night) and its
    reproducers. Raises ``OSError`` with a message naming the path."""
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "it exists and is not a directory", str(out))
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out, prefix=".statemodel-write-check-"):
        pass
    return out


REPORT_FILES = frozenset({"trace.json", "timeline.html", "repro_test.py"})


def _ours(path: Path) -> bool:
    """A file this writer writes, or the bytecode ``pytest failure-N/repro_test.py`` leaves."""
    if path.is_symlink():
        return False
    if path.name == "__pycache__" and path.is_dir():
        return all(f.suffix == ".pyc" and f.is_file() and not f.is_symlink() for f in path.iterdir())
    return path.name in REPORT_FILES and path.is_file()


def _remove_stale_failures(out: Path, written: list[str]) -> None:
    """Remove the ``failure-N`` folders an older run left beyond this run's: beside a clean
    summary.json they looked like findings of this run, and ``replay out/failure-2`` replayed
    an old bug. A folder holding anything but what this writer (and pytest) put there is kept."""
    for folder in out.glob("failure-*"):
        if (folder.name in written or not folder.name[len("failure-"):].isdigit() or not folder.is_dir()
                or folder.is_symlink()):
            continue
        if all(map(_ours, folder.iterdir())):
            shutil.rmtree(folder)


def write(result: FuzzResult, directory: str | os.PathLike) -> Path:
    """Write the report; returns the directory. Existing failure folders are replaced, and
    those beyond this run's removed (``_remove_stale_failures``)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    folders = []
    for n, group in enumerate(result.causes, start=1):
        failure = group[0]
        name = f"failure-{n}"
        folder = out / name
        folder.mkdir(exist_ok=True)
        trace = failure_trace(failure, group[1:])
        (folder / "trace.json").write_text(json.dumps(trace, indent=2, sort_keys=True))
        (folder / "timeline.html").write_text(render_html(trace))
        if failure.program:
            (folder / "repro_test.py").write_text(render_repro(failure, name))
        else:
            (folder / "repro_test.py").unlink(missing_ok=True)  # an older run's, for another failure
        folders.append(name)
    _remove_stale_failures(out, folders)
    (out / "summary.json").write_text(json.dumps(summary(result, folders), indent=2, sort_keys=True))
    tree = junit(result)
    ET.indent(tree)
    tree.write(out / "junit.xml", encoding="utf-8", xml_declaration=True)
    return out
