"""make_target dispatch and the clear errors users get for targets we cannot run."""

from __future__ import annotations

import math
import sys
import types

import pytest

from statemodel.machine.options import MachineOptions
from statemodel.target import ReferenceTarget, check_target, make_target
from statemodel.target.external import ExternalTarget, parse_ws_url
from statemodel.target.factory import FactoryTarget


def test_reference_is_the_default() -> None:
    assert isinstance(make_target(MachineOptions(), 1), ReferenceTarget)


def test_ws_url_needs_tcp_transport() -> None:
    with pytest.raises(ValueError, match="--transport tcp"):
        make_target(MachineOptions(target="ws://127.0.0.1:8765/"), 0)


def test_ws_url_builds_an_external_target() -> None:
    target = make_target(MachineOptions(target="ws://127.0.0.1:8765/chat?room=1", transport="tcp"), 0)
    assert isinstance(target, ExternalTarget)
    assert (target.host, target.port, target.resource) == ("127.0.0.1", 8765, "/chat?room=1")
    assert target.can_restart is False and 0 < target.max_advance < math.inf  # real seconds are paid for
    assert target.expiry_after() == math.inf  # resets are never excused by time by default


@pytest.mark.parametrize("spec", ["http://127.0.0.1/", "reference2", "foo", "a.b", ":factory", "pkg.mod:"])
def test_unknown_target_names_the_three_forms(spec: str) -> None:
    with pytest.raises(ValueError) as info:
        make_target(MachineOptions(target=spec, transport="tcp"), 0)
    text = str(info.value)
    assert repr(spec) in text
    for form in ("reference", "ws://", "package.module:factory"):
        assert form in text


def test_parse_ws_url() -> None:
    assert parse_ws_url("ws://localhost/") == (False, "localhost", 80, "localhost", "/", {})
    assert parse_ws_url("wss://example.org:9000") == (True, "example.org", 9000, "example.org:9000", "/", {})
    assert parse_ws_url("ws://[::1]:81/x#expiry_after=50")[1:5] == ("::1", 81, "[::1]:81", "/x")
    assert parse_ws_url("ws://h/#expiry_after=50")[5] == {"expiry_after": 50.0}


@pytest.mark.parametrize(
    "url, message",
    [
        ("ws:///path", "no host"),
        ("ws://h:99999/", "bad port"),
        ("ws://h/#ttl=3", "unknown option #ttl"),
        ("ws://h/#expiry_after=soon", "needs seconds"),
        ("ws://h/#expiry_after=0", "must be > 0"),
        ("ws://h/#shared=yes", "#shared is 1"),
        ("ws://h/#shared=1&shared=0", "given twice"),
    ],
)
def test_bad_ws_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_ws_url(url)


def test_expiry_after_from_the_url() -> None:
    target = make_target(MachineOptions(target="ws://127.0.0.1:1/#expiry_after=42", transport="tcp"), 0)
    assert target.expiry_after() == 42.0


def test_only_a_url_marked_shared_excuses_pressure_we_cannot_see() -> None:
    """``#shared=1`` (what ``fuzz --workers N`` adds): a 1013 or an outage near evict_grace
    explains a reset (target/shared.py); without it nothing does."""
    alone = make_target(MachineOptions(target="ws://127.0.0.1:1/#expiry_after=42", transport="tcp"), 0)
    shared = make_target(MachineOptions(target="ws://127.0.0.1:1/#expiry_after=42&shared=1", transport="tcp"), 0)
    assert shared.shared and not alone.shared and shared.expiry_after() == 42.0
    assert shared.may_have_shed(0.0, [1013]) and shared.may_have_shed(5.0, [1006])
    assert not shared.may_have_shed(0.0, [1006])
    assert not alone.may_have_shed(0.0, [1013]) and not alone.may_have_shed(5.0, [1006])


# ---- factories -------------------------------------------------------------------------------
@pytest.fixture
def fake_module():
    module = types.ModuleType("statemodel_test_factories")
    sys.modules[module.__name__] = module
    yield module
    del sys.modules[module.__name__]


def test_factory_target_delegates_to_the_object(fake_module) -> None:
    fake_module.make = lambda options, seed: ReferenceTarget(options, seed)
    target = make_target(MachineOptions(target="statemodel_test_factories:make"), 7)
    assert isinstance(target, FactoryTarget)
    assert target.can_restart is True and target.seed == 7
    assert target.net is target.inner.net


def test_factory_returning_an_incomplete_object_names_what_is_missing(fake_module) -> None:
    class Half:
        can_restart = True
        max_advance = 1.0

        async def start(self, nursery): ...

        def heal(self): ...

    fake_module.make = lambda options, seed: Half()
    with pytest.raises(TypeError) as info:
        make_target(MachineOptions(target="statemodel_test_factories:make"), 0)
    text = str(info.value)
    for name in ("stop", "dial", "new_client", "apply", "expected_chunks", "restart_server", "generation_of"):
        assert name in text
    assert "Half" in text and "heal" not in text.split("missing", 1)[1]


def test_factory_with_a_bad_max_advance(fake_module) -> None:
    class Bad:
        can_restart = False
        max_advance = 0

    for m in ("start", "stop", "dial", "new_client", "apply", "heal", "recovery_bound",
              "expiry_after", "check_bounds", "session_context", "expected_chunks"):
        setattr(Bad, m, lambda self, *a: None)
    fake_module.make = lambda options, seed: Bad()
    with pytest.raises(TypeError, match="max_advance must be a positive number"):
        make_target(MachineOptions(target="statemodel_test_factories:make"), 0)


def test_factory_target_without_net_gets_an_empty_trace(fake_module) -> None:
    inner = ReferenceTarget(MachineOptions(), 0)

    class NoNet:
        def __getattr__(self, name):
            if name == "net":
                raise AttributeError(name)
            return getattr(inner, name)

    for attr in ("can_restart", "max_advance"):
        setattr(NoNet, attr, getattr(inner, attr))
    fake_module.make = lambda options, seed: NoNet()
    target = make_target(MachineOptions(target="statemodel_test_factories:make"), 0)
    assert target.net.trace.events == []


@pytest.mark.parametrize(
    "spec, error, message",
    [
        ("statemodel_no_such_module:f", ValueError, "cannot import module 'statemodel_no_such_module'"),
        ("statemodel.target.examples:nope", ValueError, "has no 'nope'"),
        ("statemodel.target.examples:SMALL_BUFFERS", TypeError, "not a callable"),
    ],
)
def test_factory_load_errors(spec: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        make_target(MachineOptions(target=spec), 0)


@pytest.mark.parametrize(
    "target, transport, message",
    [
        ("ws://127.0.0.1:1/", "sim", "--transport tcp"),
        ("ws://h:99999/", "tcp", "bad port"),
        ("nonsense", "sim", "package.module:factory"),
        ("statemodel_no_such_module:f", "sim", "cannot import"),
    ],
)
def test_check_target_refuses_what_make_target_would(target, transport, message) -> None:
    options = MachineOptions(target=target, transport=transport)
    with pytest.raises(ValueError, match=message):
        check_target(options)
    with pytest.raises(ValueError, match=message):
        make_target(options, 0)


@pytest.mark.parametrize("target, transport", [("reference", "sim"), ("reference", "tcp"), ("ws://127.0.0.1:1/x", "tcp"),
                                               ("statemodel.target.examples:small_buffers", "sim")])
def test_check_target_accepts_the_three_forms(target, transport) -> None:
    check_target(MachineOptions(target=target, transport=transport))


def test_the_reference_target_runs_on_every_transport_it_lists() -> None:
    """Issue 13.4: tcp and netns are offered for the default target, so they must build it."""
    from statemodel.net.netns import unavailable_reason
    from statemodel.target.loopback import LoopbackReferenceTarget

    assert isinstance(make_target(MachineOptions(transport="tcp"), 0), LoopbackReferenceTarget)
    reason = unavailable_reason()
    if reason:
        with pytest.raises(ValueError, match="netns"):
            check_target(MachineOptions(transport="netns"))
    else:
        check_target(MachineOptions(transport="netns"))
        assert isinstance(make_target(MachineOptions(transport="netns"), 0), LoopbackReferenceTarget)


def test_an_external_server_keeps_every_steps_whole_slice() -> None:
    """Its server runs in another process: the tester cannot see it still working on an
    answer, so the slice after a step never ends early for being idle here (quiet.py)."""
    target = make_target(MachineOptions(target="ws://127.0.0.1:1/", transport="tcp"), 0)
    assert target.in_flight() is True
