"""A fuzz worker's RSS (DESIGN.md §7: <= 250 MiB over 20,000 examples).

Runs ``statemodel fuzz`` (one worker, dev profile, the reference target) in its own process
for a number of examples past one Hypothesis batch (``runner.MAX_BATCH``, where a worker's
memory reaches its plateau) and reads the RSS its summary reports: the kernel's high-water
mark and the median of the run's second half. The anchor is a process that imported the
same machine and Hypothesis and ran nothing. The 20,000-example figure in BENCHMARKS.md is
a separate long run (``statemodel fuzz --examples 20000``); this is its quick proxy.

``python -m statemodel.bench.fuzzmem [examples]`` prints the JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

_ANCHOR = """
import statemodel.machine, statemodel.fuzz.runner, hypothesis
from statemodel.fuzz.memory import pin_malloc, rss_mib
pin_malloc()
print(rss_mib())
"""


def anchor_mib() -> float:
    out = subprocess.run([sys.executable, "-c", _ANCHOR], capture_output=True, text=True, timeout=120, check=True)
    return float(out.stdout.split()[-1])


def measure(examples: int = 600, seed: int = 0, timeout: float = 1800.0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="statemodel-fuzzmem-") as tmp:
        report = Path(tmp) / "report"
        proc = subprocess.run(
            [sys.executable, "-m", "statemodel", "fuzz", "--examples", str(examples), "--profile", "dev",
             "--seed", str(seed), "--report", str(report), "--progress-interval", "3600"],
            capture_output=True, text=True, timeout=timeout, cwd=tmp)
        if proc.returncode not in (0, 1) or not (report / "summary.json").exists():
            raise RuntimeError(f"statemodel fuzz exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
        summary = json.loads((report / "summary.json").read_text())
    return {"examples": summary["examples"], "steps": summary["steps"], "failures": len(summary["failures"]),
            "seconds": summary["elapsed"], **summary["memory"], "anchor_mib": anchor_mib()}


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 600)))
