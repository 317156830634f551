"""The shared-server allowance's parts (statemodel/target/shared.py): the starvation credit,
and the ``#shared`` flag through everything that reads or writes a target URL, attacked with
a grammar of URLs nobody wrote by hand."""

from __future__ import annotations

import urllib.parse

import pytest
from hypothesis import given, settings, strategies as st

from statemodel.fuzz.config import FuzzConfig
from statemodel.machine import MachineOptions
from statemodel.net import faults as F
from statemodel.target import check_target, make_target
from statemodel.target.external import is_ws_url, parse_ws_url
from statemodel.target.proxied import REAL_TIME_CONFIG
from statemodel.target.shared import StarvationLog, notice_lag, shared_url, withholds_server_close

LAG = notice_lag(REAL_TIME_CONFIG)  # 0.9 s


# ---- the starvation credit -------------------------------------------------------------------
class Host:
    """A host's starvation over time: ``(seconds, fraction starved)`` pieces, from t = 0."""

    def __init__(self, pieces) -> None:
        self.pieces = pieces
        self.now = 0.0

    def starved(self, t: float) -> float:
        total, start = 0.0, 0.0
        for length, fraction in self.pieces:
            total += fraction * max(0.0, min(t, start + length) - start)
            start += length
        return total

    def meter(self) -> float:
        return self.starved(self.now)


def sampled(host: Host, until: float, period: float = 0.02) -> StarvationLog:
    log = StarvationLog(host.meter, period)
    k = 0
    while k * period <= until:
        host.now = k * period
        log.note(host.now)
        k += 1
    host.now = until
    return log


def exact_window(host: Host, notice: float, lag: float, up: float) -> float:
    """Starvation in the last ``lag`` seconds of time the host gave us before ``notice``: the
    edge is the earliest t with (notice - t) - (S(notice) - S(t)) <= lag (searched by
    bisection), so a fully starved stretch at the edge, where that time given does not
    change, is inside the window (it may have delayed the notice)."""
    lo, hi = 0.0, notice
    for _ in range(100):
        mid = (lo + hi) / 2
        if (notice - mid) - (host.starved(notice) - host.starved(mid)) <= lag + 1e-9:
            hi = mid
        else:
            lo = mid
    return host.starved(notice) - host.starved(max(hi, up))


def test_starvation_long_before_the_loss_is_not_credited():
    """Session 11 counted every starved second since the connection came up: 5 s starved
    early in a 20 s connection excused any reset after any drop (the slack is 0.1 s)."""
    host = Host([(2.0, 0.0), (10.0, 0.5), (8.0, 0.0)])
    log = sampled(host, 20.0)
    assert host.starved(20.0) == pytest.approx(5.0)
    assert log.credit(20.0, LAG, since=0.0) == pytest.approx(0.0)


def test_starvation_while_the_client_was_noticing_is_credited():
    """A freeze in the last moments before the notice: the client's timers fired late by it."""
    host = Host([(19.5, 0.0), (3.0, 1.0), (0.2, 0.0)])
    log = sampled(host, 22.7)
    assert log.credit(22.7, LAG, since=0.0) == pytest.approx(3.0, abs=0.03)


def test_nothing_before_the_connection_came_up_is_credited():
    host = Host([(5.0, 1.0), (0.3, 0.0)])
    log = sampled(host, 5.3)
    assert log.credit(5.3, LAG, since=host.starved(5.0)) == pytest.approx(0.0)


@settings(max_examples=60, deadline=None)
@given(pieces=st.lists(st.tuples(st.sampled_from([0.01, 0.05, 0.3, 1.0, 4.0]), st.sampled_from([0.0, 0.25, 1.0])),
                       min_size=1, max_size=12),
       up_at=st.floats(0, 1), lag=st.sampled_from([LAG, 0.05, 3.0]))
def test_the_credit_covers_the_window_and_overshoots_by_one_period_at_most(pieces, up_at, lag):
    """Never short of the starvation in the window (a false failure), never more than the
    whole connection's, and looser than exact by at most one sampling period."""
    host = Host(pieces)
    end = sum(length for length, _ in pieces)
    up = up_at * end
    period = 0.02
    log = sampled(host, end, period)
    credit = log.credit(end, lag, since=host.starved(up))
    exact = exact_window(host, end, lag, up)
    assert exact - 1e-6 <= credit <= host.starved(end) - host.starved(up) + 1e-6
    assert credit <= exact + period + 1e-6


# ---- which faults may keep a 1013 from the client --------------------------------------------
def test_only_faults_on_the_servers_close_frames_withhold_them():
    assert withholds_server_close(F.DropCloseFrame(direction="s2c"))
    assert withholds_server_close(F.DropCloseFrame())  # both directions
    assert withholds_server_close(F.DelayCloseFrame(direction="both", seconds=1.0))
    assert not withholds_server_close(F.DropCloseFrame(direction="c2s"))  # the client's close only
    assert not withholds_server_close(F.Partition(direction="s2c"))  # the client gives up first (dead_after < stall_after)
    assert not withholds_server_close(F.Abort())


# ---- the #shared flag: a grammar of target URLs ----------------------------------------------
SCHEMES = st.sampled_from(["ws", "wss", "WS", "Ws", "wS", "WSS", "Wss", "wsS"])
HOSTS = st.sampled_from(["h", "127.0.0.1", "[::1]", "[fe80::1]", "example.org", "xn--bcher-kva.example", ""])
PORTS = st.sampled_from(["", ":0", ":1", ":80", ":65535", ":65536", ":99999", ":", ":-1", ":x"])
USERINFO = st.sampled_from(["", "u@", "u:p@", "%40:%3A@"])
PATHS = st.sampled_from(["", "/", "/x", "/a/b", "/%20", "/#/"])
QUERIES = st.sampled_from(["", "?", "?q=1", "?shared=1", "?a=1&b=2", "?#"])
KEYS = st.sampled_from(["shared", "SHARED", "Shared", "sh%61red", "%73hared", "expiry_after", "x", "", "shared%3D1"])
VALUES = st.sampled_from(["1", "0", "", "yes", "%31", "+1", "1.0", "5", "inf", "nan", "-1", "1%26x%3D2"])
PAIRS = st.tuples(KEYS, st.sampled_from(["=", ""]), VALUES).map(lambda p: p[0] + p[1] + (p[2] if p[1] else ""))
FRAGMENTS = st.one_of(
    st.just(""), st.just("#"),
    st.lists(PAIRS, max_size=3).map(lambda ps: "#" + "&".join(ps)),
    st.lists(PAIRS, min_size=1, max_size=3).map(lambda ps: "#" + "&".join(ps) + "&"),
    st.tuples(PAIRS, PAIRS).map(lambda ps: f"#{ps[0]}#{ps[1]}"),  # two fragments
)
URLS = st.builds(lambda *parts: "{}://{}{}{}{}{}{}".format(*parts), SCHEMES, USERINFO, HOSTS, PORTS, PATHS,
                 QUERIES, FRAGMENTS)


def parsed(url: str):
    try:
        return parse_ws_url(url)
    except ValueError as exc:
        return f"error: {exc}"


@settings(max_examples=400, deadline=None)
@given(url=URLS, workers=st.integers(1, 8))
def test_workers_mark_exactly_the_urls_they_can_test_and_change_nothing_else(url, workers):
    """``--workers N`` turns ``#shared`` on (unless the URL says either way), keeps every
    byte the user wrote, is idempotent, and leaves a URL that does not parse as typed (so
    the error quotes what the user wrote); one worker never marks. Whatever it produces
    means the same to ``parse_ws_url`` as what the user wrote, plus the flag."""
    marked = FuzzConfig(target=url, transport="tcp", workers=workers).target
    before = parsed(url)
    if workers == 1 or isinstance(before, str):
        assert marked == url
        return
    assert marked.startswith(url)
    after = parsed(marked)
    assert not isinstance(after, str), after
    assert after[:5] == before[:5]
    assert after[5] == {**before[5], "shared": before[5].get("shared", 1.0)}
    assert FuzzConfig(target=marked, transport="tcp", workers=workers).target == marked  # idempotent
    assert shared_url(marked) == marked


@settings(max_examples=200, deadline=None)
@given(url=URLS)
def test_every_url_form_is_accepted_or_refused_the_same_everywhere(url):
    """Upper/mixed-case schemes included: what ``parse_ws_url`` accepts, ``check_target``
    and ``make_target`` accept too (and build the external target with the same flag)."""
    assert is_ws_url(url)
    before = parsed(url)
    options = MachineOptions(target=url, transport="tcp")
    if isinstance(before, str):
        with pytest.raises(ValueError):
            check_target(options)
        return
    check_target(options)
    target = make_target(options, 0)
    assert type(target).__name__ == "ExternalTarget"
    assert target.shared == bool(before[5].get("shared", 0))


@pytest.mark.parametrize("url", ["WS://127.0.0.1:1/", "Wss://127.0.0.1:1/x#shared=1"])
def test_an_upper_case_scheme_is_a_ws_target(url):
    """``fuzz --workers N`` marked ``WS://`` URLs shared (session 11), but the target check
    called them an unknown target."""
    check_target(MachineOptions(target=url, transport="tcp"))
    assert make_target(MachineOptions(target=url, transport="tcp"), 0).shared == url.endswith("shared=1")


@pytest.mark.parametrize("url", ["ws://h/ ", "ws://h/x y", "ws://h/\t", " ws://h/", "ws://h/#shared=1\n"])
def test_blanks_and_control_characters_are_refused(url):
    """A trailing blank went into the handshake's request line (``GET / #shared=1``...)."""
    with pytest.raises(ValueError, match="blank or control character"):
        parse_ws_url(url)
    assert FuzzConfig(target=url, transport="tcp", workers=2).target == url


@pytest.mark.parametrize("url, message", [
    ("ws://u:p@127.0.0.1:1/", "credentials in the URL"),  # went into the Host header: 'u:p@127.0.0.1:1'
    ("ws://u@[::1]:1/#shared=1", "credentials in the URL"),
    ("ws://127.0.0.1:0/", "bad port"),  # dialled port 80 instead
])
def test_urls_the_client_would_get_wrong_are_refused(url, message):
    with pytest.raises(ValueError, match=message):
        parse_ws_url(url)
    with pytest.raises(ValueError, match=message):
        check_target(MachineOptions(target=url, transport="tcp"))
    assert parse_ws_url("ws://127.0.0.1:65535/")[2] == 65535 and parse_ws_url("wss://h/")[2] == 443


@pytest.mark.parametrize("url, marked", [
    ("ws://h/#x", "ws://h/#x"),  # unknown option: left as typed, refused by the check
    ("ws://h/#", "ws://h/#shared=1"),
    ("ws://h/#expiry_after=%35", "ws://h/#expiry_after=%35&shared=1"),  # kept byte for byte, not re-encoded
    ("ws://h/#expiry_after=5&", "ws://h/#expiry_after=5&shared=1"),
    ("ws://h/?shared=0", "ws://h/?shared=0#shared=1"),  # the query goes to the server: not the flag
    ("ws://h/#%73hared=0", "ws://h/#%73hared=0"),  # says it, percent-encoded
    ("ws://[::1]:65535/#shared=0", "ws://[::1]:65535/#shared=0"),
])
def test_marking_examples(url, marked):
    assert FuzzConfig(target=url, transport="tcp", workers=4).target == marked


def test_a_factory_target_is_never_marked():
    """``module:factory``: the URL flag has nowhere to go; the target answers ``may_have_shed``
    itself (docs/TARGETS.md; tests/machine/test_shared_server.py)."""
    assert FuzzConfig(target="pkg.mod:factory", transport="tcp", workers=4).target == "pkg.mod:factory"


def test_a_reproducer_replays_with_the_same_allowance(tmp_path):
    """The marked URL goes into the reproducer as written; reading it back (as ``statemodel
    replay`` does) gives the same options, so the replay excuses exactly what the run did."""
    from statemodel.cli.replay import load_reproducer
    from statemodel.fuzz.config import Failure
    from statemodel.fuzz.machine import DEFAULT_MACHINE
    from statemodel.fuzz.runner import options_dict
    from statemodel.report.repro import render_repro

    config = FuzzConfig(target="Ws://[::1]:65535/p?q=1#expiry_after=%35", transport="tcp", workers=3)
    failure = Failure(worker=0, seed=0, error_type="InvariantViolation", message="m",
                      program="state = StreamMachine()\nstate.teardown()", blob=None,
                      machine=DEFAULT_MACHINE, options=options_dict(config), step_count=1)
    path = tmp_path / "repro_test.py"
    path.write_text(render_repro(failure, tmp_path.name))
    back = load_reproducer(path)["options"]["target"]
    assert back == config.target == "Ws://[::1]:65535/p?q=1#expiry_after=%35&shared=1"
    assert make_target(MachineOptions(target=back, transport="tcp"), 0).shared
    assert urllib.parse.urlsplit(back).fragment.endswith("shared=1")


def test_the_machine_samples_starvation_on_the_real_clock_for_a_url_target(script_server_url):
    """What feeds the credit: a ws:// target (it has ``may_have_shed``) on the real clock gets
    a sampler while it runs; the sim gets none (nothing to credit, and one more task would
    reshuffle its seeded schedule)."""
    from statemodel.machine import machine_class

    state = machine_class(MachineOptions(target=f"{script_server_url}#shared=1", transport="tcp"))()
    try:
        state.boot(seed=0, chunks=[{"kind": "text", "seed": 1, "chars": 10}])
        state.advance(seconds=0.2)
        samples = list(state.starvation.samples)
        assert len(samples) >= 3 and all(a[0] < b[0] and a[1] <= b[1] for a, b in zip(samples, samples[1:]))
        assert state.target.shared
    finally:
        state.teardown()
    sim = machine_class(MachineOptions())()
    try:
        sim.boot(seed=0, chunks=[])
        assert sim.starvation is None
    finally:
        sim.teardown()


@pytest.mark.parametrize("target, workers, noted", [
    ("ws://127.0.0.1:1/", 4, True),
    ("ws://127.0.0.1:1/", 1, False),
    ("ws://127.0.0.1:1/#shared=0", 4, False),  # the user said so: nothing added, nothing to explain
    ("ws://127.0.0.1:1/#shared=1", 4, False),
])
def test_the_banner_shows_the_mark_and_says_what_it_does(monkeypatch, capsys, target, workers, noted):
    """What a user sees of ``--workers N``'s mark: the marked URL, and a line saying why it is
    there and how to turn it off (only when the tester added it)."""
    from statemodel import fuzz
    from statemodel.cli import fuzz as cli_fuzz
    from statemodel.cli import main

    class Started(Exception):
        pass

    def stop(config, progress):
        raise Started

    monkeypatch.setattr(cli_fuzz, "preflight", lambda config: None)  # no server behind the URL
    monkeypatch.setattr(fuzz, "run", stop)
    with pytest.raises(Started):
        # as many examples as workers: more workers than examples are lowered to the examples
        main(["fuzz", "--target", target, "--transport", "tcp", "--workers", str(workers), "--examples", str(workers)])
    err = capsys.readouterr().err
    shown = FuzzConfig(target=target, transport="tcp", workers=workers).target
    assert f"target {shown} over tcp" in err
    assert (cli_fuzz.SHARED_NOTE in err) == noted
