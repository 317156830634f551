"""Hypothesis settings profiles for statemodel: ci, dev, nightly, replay.

Registered on import (the pytest plugin imports this module), chosen with
``pytest --hypothesis-profile=NAME`` or ``statemodel fuzz --profile NAME``.
Hypothesis loads its own ``ci`` profile when the ``CI`` variable is set; ours replaces it
so that CI runs are deterministic *and* use statemodel's bounds.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

FAST_PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink)

COMMON = dict(
    deadline=None,
    phases=FAST_PHASES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

PROFILES: dict[str, dict] = {
    # Deterministic and bounded: same examples on every run, no database writes.
    "ci": dict(COMMON, derandomize=True, database=None, max_examples=60, stateful_step_count=40, print_blob=True),
    # Local development: random exploration, failures kept in the local database.
    "dev": dict(COMMON, max_examples=100, stateful_step_count=50, print_blob=True),
    # Long runs: many examples, longer programs.
    "nightly": dict(COMMON, max_examples=20_000, stateful_step_count=80, print_blob=True),
    # Mutant hunting: find one bug fast and shrink it; no database, first bug only.
    "hunt": dict(COMMON, max_examples=100_000, stateful_step_count=20, database=None,
                 report_multiple_bugs=False, print_blob=True),
    # Re-run what the database holds; generate nothing new.
    "replay": dict(COMMON, phases=(Phase.explicit, Phase.reuse, Phase.shrink), print_blob=True),
}


def register() -> None:
    for name, values in PROFILES.items():
        settings.register_profile(name, **values)
    # Hypothesis auto-loads its built-in "ci" profile when CI is set; swap in ours.
    if os.environ.get("CI"):
        settings.load_profile("ci")


register()
