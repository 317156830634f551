"""steprate.fixed_work: the workload whose CPU cost compares two trees is the same every run."""

from statemodel.bench.steprate import fixed_work


def test_fixed_work_is_the_same_work_every_run():
    first, second = fixed_work(1), fixed_work(1)
    assert first["steps"] > 0 and first["failures"] == 0
    assert (first["steps"], first["examples"]) == (second["steps"], second["examples"])


def test_compare_trees_runs_the_same_work_in_each_tree():
    """Two workers of this very tree: the same seeds give the same steps, and each tree's
    figure is reported against the first's."""
    from pathlib import Path

    import statemodel
    from statemodel.bench.steprate import compare_trees

    root = str(Path(statemodel.__file__).resolve().parents[1])
    result = compare_trees([root, root], rounds=1, seeds=1)
    first, second = result["trees"]
    assert first["steps"] == second["steps"] > 0
    assert first["ratio"] == 1.0 and second["ms_per_step"] > 0


def test_library_floor_splits_a_step_into_tester_and_world_and_prices_the_messages():
    """`steprate floor`: the world's share is the CPU inside the machines' trio loops, so the
    two shares add up to the whole step, and pricing the world at its messages alone can
    only raise the ratio (bounds, not timings: every figure comes from the same run)."""
    import math

    from statemodel.bench.steprate import library_floor

    r = library_floor(seeds=1, messages=50)
    assert r["messages_per_step"] > 1  # a step sends commands, chunks, acks, pings: counted, not assumed
    assert r["world_ms_per_step"] > 0 and r["tester_ms_per_step"] > 0
    assert math.isclose(r["world_ms_per_step"] + r["tester_ms_per_step"], r["stream_ms_per_step"])
    assert r["ratio"] < r["free_world_ratio"]
    assert r["floor_ratio"] < r["free_world_ratio"]
