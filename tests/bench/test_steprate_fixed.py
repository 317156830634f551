"""steprate.fixed_work: the workload whose CPU cost compares two trees is the same every run."""

from statemodel.bench.steprate import fixed_work


def test_fixed_work_is_the_same_work_every_run():
    first, second = fixed_work(1), fixed_work(1)
    assert first["steps"] > 0 and first["failures"] == 0
    assert (first["steps"], first["examples"]) == (second["steps"], second["examples"])
