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
