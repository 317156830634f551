"""Plain ``trio.run`` tests here (attacks, storms) replay bit for bit: trio shuffles each
scheduling batch with its module RNG, which only Hypothesis seeds (inside its own tests)."""

import pytest
import trio


@pytest.fixture(autouse=True)
def seeded_trio_scheduler():
    rng = trio._core._run._r
    state = rng.getstate()
    rng.seed(0)
    yield
    rng.setstate(state)
