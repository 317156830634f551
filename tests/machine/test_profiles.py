"""statemodel's settings profiles are registered and the ci profile is deterministic."""

import os
import subprocess
import sys

from hypothesis import Phase, settings

import statemodel.profiles  # noqa: F401


def test_profiles_are_registered_with_their_bounds():
    ci = settings.get_profile("ci")
    assert ci.derandomize and ci.database is None and Phase.explain not in ci.phases
    assert settings.get_profile("nightly").max_examples == 20_000
    assert Phase.generate not in settings.get_profile("replay").phases
    assert settings.get_profile("hunt").report_multiple_bugs is False


def test_ci_variable_loads_ours_not_hypothesis_builtin():
    code = "import statemodel.profiles; from hypothesis import settings; print(settings().max_examples)"
    env = dict(os.environ, CI="true")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == str(settings.get_profile("ci").max_examples)
