"""Fault strategies draw only valid, eval-able faults, and schedules always end healed."""

from hypothesis import given, settings, strategies as st

from statemodel.net import faults as F
from statemodel.strategies.faults import PROFILES, degrade_faults, drop_faults, fault_schedules, network_profiles


@settings(max_examples=200)
@given(st.one_of(drop_faults(), degrade_faults()))
def test_every_drawn_fault_is_valid_and_prints_as_runnable_python(fault):
    assert isinstance(fault, F.Fault)
    assert eval(repr(fault), vars(F)) == fault


@given(drop_faults())
def test_drop_faults_are_drops(fault):
    assert fault.kind == "drop"


@given(degrade_faults())
def test_degrade_faults_are_lifted_by_heal(fault):
    assert fault.kind in ("degrade", "frame")


@given(fault_schedules(max_steps=5, horizon=10.0, links=2))
def test_schedules_are_sorted_and_end_healed(scenario):
    times = [s.at for s in scenario.steps]
    assert times == sorted(times)
    assert isinstance(scenario.steps[-1].fault, F.Heal)
    assert all(s.link in (None, 0, 1) for s in scenario.steps)


@given(network_profiles())
def test_named_profiles_are_degrade_faults(profile):
    assert profile in PROFILES.values()
    assert all(f.kind == "degrade" for f in profile)
