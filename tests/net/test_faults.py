"""The fault vocabulary: readable eval-able reprs, validation with clear messages."""

from __future__ import annotations

import pytest

from statemodel.net import faults as F


ALL = [
    F.CleanClose(), F.Abort(), F.TruncateMidFrame("c2s"), F.HalfOpen(), F.DropDuringHandshake(),
    F.Latency("s2c", seconds=0.2, jitter=0.1), F.Bandwidth(bytes_per_second=5000), F.Slice(max_bytes=3),
    F.Clog("c2s"), F.Partition(), F.PacketLoss(every=3), F.Heal(), F.SplitAtFrameBoundary(), F.DropCloseFrame("s2c"),
    F.DelayCloseFrame(seconds=2.5), F.SwallowPongs(),
]


@pytest.mark.parametrize("fault", ALL, ids=repr)
def test_repr_is_short_and_evaluates_back(fault):
    assert eval(repr(fault), vars(F)) == fault
    assert F.fault_from_dict(fault.to_dict()) == fault
    hash(fault)


def test_repr_omits_defaults():
    assert repr(F.Abort()) == "Abort()"
    assert repr(F.Latency(seconds=0.1)) == "Latency(seconds=0.1)"
    assert repr(F.Partition("c2s")) == "Partition(direction='c2s')"


def test_every_fault_class_is_registered_and_documented():
    assert set(F.FAULTS.values()) == {type(f) for f in ALL}
    assert all(cls.__doc__ for cls in F.FAULTS.values())


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: F.Latency("up"), "direction must be one of"),
        (lambda: F.Latency(seconds=-1), "seconds must be a finite number >= 0"),
        (lambda: F.Latency(seconds=float("nan")), "finite"),
        (lambda: F.Bandwidth(bytes_per_second=0), "must be > 0"),
        (lambda: F.Slice(max_bytes=0), "max_bytes must be an int >= 1"),
        (lambda: F.fault_from_dict({"fault": "Nope"}), "unknown fault 'Nope'"),
        (lambda: F.fault_from_dict({"fault": "Latency", "args": {"delay": 1}}), "unknown argument"),
        (lambda: F.fault_from_dict(["Latency"]), "expected an object"),
        (lambda: F.Step(-1, F.Abort()), "finite time >= 0"),
        (lambda: F.PacketLoss(probability=2), "within \\[0, 1\\]"),
        (lambda: F.PacketLoss(every=1), "every must be"),
    ],
)
def test_bad_faults_are_rejected_with_a_clear_message(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_scenario_orders_steps_by_time_stably():
    s = F.Scenario((F.Step(2, F.Heal()), F.Step(1, F.Clog()), F.Step(1, F.Abort())))
    assert [step.fault for step in s.steps] == [F.Clog(), F.Abort(), F.Heal()]
    assert F.Latency().directions == ("c2s", "s2c") and F.Clog("s2c").directions == ("s2c",)


def test_hypothesis_prints_faults_as_their_eval_able_repr():
    """Shrunk step programs print rule arguments with Hypothesis' pretty-printer."""
    from hypothesis.vendor.pretty import pretty

    from statemodel.net import faults as F

    for fault in (F.Abort(), F.Latency(seconds=0.5), F.HalfOpen(direction="c2s")):
        text = pretty(fault)
        assert text == repr(fault)
        assert eval(text, vars(F)) == fault
