"""`statemodel.strategies` cannot clash with a user's own `strategies` module (issue 13).

A user project with its own strategies.py first on sys.path made `import statemodel.machine`
fail with `ModuleNotFoundError: No module named 'strategies.payloads'; 'strategies' is not a
package`, because statemodel imported the bare top-level name. statemodel now serves the
strategies as `statemodel.strategies` and never imports the bare name itself."""

from __future__ import annotations

import subprocess
import sys

import pytest

USER_CODE = """
import strategies                                   # the user's own module or package
assert strategies.MINE == "user", strategies
from statemodel.strategies.payloads import chunk_specs
from statemodel.strategies.faults import drop_faults
from statemodel.machine import MachineOptions, machine_class

Machine = machine_class(MachineOptions(mutants=frozenset({"no_dedupe"})))
assert chunk_specs() is not None and drop_faults() is not None and Machine.TestCase
import sys
assert sys.modules["strategies"] is strategies       # still the user's
print("ok")
"""


@pytest.mark.parametrize("layout", ["module", "package"])
def test_a_user_project_with_its_own_strategies_imports_statemodel(tmp_path, layout):
    if layout == "module":
        (tmp_path / "strategies.py").write_text('MINE = "user"\n')
    else:
        (tmp_path / "strategies").mkdir()
        (tmp_path / "strategies" / "__init__.py").write_text('MINE = "user"\n')
    (tmp_path / "test_user.py").write_text(USER_CODE)
    proc = subprocess.run([sys.executable, "test_user.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "ok"


def test_statemodel_never_imports_the_bare_name(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import sys, statemodel.cli.fuzz, statemodel.machine, "
                           "statemodel.hostile.machine; print('strategies' in sys.modules)"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
