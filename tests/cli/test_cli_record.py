"""Recorder: canonical digests, fault counting and in-order folding of many runs."""

from statemodel.record import Collector, Recorder, canonical, fault_kind


def _run(rec: Recorder, t: float) -> None:
    rec.step("send", {"msg": "1"})
    rec.event(t, "client:0", "frame", "data seq=1")
    rec.event(t, "net", "fault", "Drop(kind='rst')")
    rec.event(t, "net", "recovery", {"seconds": t})
    rec.state({"sent": {3, 1, 2}})


def test_digest_is_canonical_and_stable():
    a, b = Recorder(), Recorder()
    _run(a, 0.1 + 0.2)  # 0.30000000000000004
    _run(b, 0.3)
    assert a.digest() == b.digest()  # floats rounded to 1e-9
    assert a.to_json()["steps"][0]["state"] == {"sent": [1, 2, 3]}  # sets sorted, never by hash order
    b.violation("prefix", [1], [1, 1])
    assert a.digest() != b.digest()


def test_canonical_sorts_keys_and_handles_bytes():
    assert canonical({"b": 1, "a": b"\x01"}) == '{"a":{"bytes":"01"},"b":1}'


def test_fault_kind_from_repr_and_dict():
    assert fault_kind("Drop(kind='rst')") == "Drop"
    assert fault_kind({"fault": "Latency(ms=5)"}) == "Latency"


def test_collector_folds_recordings_in_order():
    def collect(order):
        with Recorder.collecting() as col:
            for t in order:
                _run(Recorder(), t)
        return col

    one, same, swapped = collect([1.0, 2.0]), collect([1.0, 2.0]), collect([2.0, 1.0])
    assert one.digest() == same.digest()
    assert one.digest() != swapped.digest()
    assert one.snapshot() == {"examples": 2, "steps": 2, "discarded": 0, "shrink_runs": 0, "replays": 0,
                              "all_steps": 2, "faults": {"Drop": 2}, "slowest_recovery": 2.0}


def test_paused_runs_are_not_collected():
    with Recorder.collecting() as col:
        _run(Recorder(), 1.0)
        with Recorder.paused():
            _run(Recorder(), 5.0)
    assert col.examples == 1 and col.slowest_recovery == 1.0
    assert isinstance(col, Collector)


def test_last_is_newest_instance():
    r = Recorder()
    assert Recorder.last is r
