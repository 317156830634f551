"""The hostile machine replays bit for bit: the same program twice gives the same recording
(every verdict with its detail, every frame on the honest network), hostile grammar input,
floods and the fairness probe included."""

from __future__ import annotations

import trio

from statemodel.hostile.grammar import Deep, HostileFrame, Obj
from statemodel.hostile.machine import HostileMachine
from statemodel.machine.options import MachineOptions
from statemodel.record import Recorder


class Recorded(HostileMachine):
    options = MachineOptions(record=True)


def run_program() -> str:
    trio._core._run._r.seed(0)  # trio's scheduler shuffle: Hypothesis seeds it per example
    m = Recorded()
    try:
        stream = m.boot(seed=3, chunks=[{"kind": "bytes", "seed": 1, "size": 70_000}], context="x")
        m.hostile_frame(probe=("stream", HostileFrame(Obj((("t", "ack"), ("a", Obj((("²", 1),)))))), True))
        m.hostile_command(command=Obj((("op", "fail"), ("reason", "\ud800"))))
        m.hostile_resume(recv=Obj((("1", 1), ("99", 5))))
        m.ws_garbage(kind="text_invalid_utf8", phase="established")
        m.silent_reader(sessions=2)
        m.echo(stream=stream, data="ü")
        m.partial_flood(streams=4, per_stream=256 << 10)
        m.prehello_flood(kind="frame_in_progress", count=8)
        m.advance(seconds=5.0)
        m.hostile_frame(probe=("pre_hello", HostileFrame(Obj((("t", "hello"), ("v", 1), ("x", Deep(40))))), False))
        m.end(stream=stream)
    finally:
        m.teardown()
    return Recorder.last.digest()


def test_same_program_same_recording():
    assert run_program() == run_program()
