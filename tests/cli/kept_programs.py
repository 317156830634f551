"""Step programs kept from real runs, for the CLI and report tests.

SEED5: `statemodel fuzz --mutant replay_skips_first --seed 5` (issue 13 items 5 and 6): the
19-step failure that replayed with a new digest every time; its invariant is raised from
teardown (no loss at quiescence), which is how failures lost their structured record.

ONE_BUG: five of the ten "distinct" failures that one run of the same mutant reported, each
shrunk to one Abort and a step that exposes it, each under another invariant.
"""

MUTANTS = ["replay_skips_first"]

SEED5 = """\
state = StreamMachine_sim_replay_skips_first()
streams_0 = state.boot(seed=0, chunks=[], context=0)
state.invariants_hold()
state.connect()
state.invariants_hold()
state.connect()
state.invariants_hold()
state.restart_server()
state.invariants_hold()
state.settle()
state.invariants_hold()
state.advance(seconds=0.01)
state.invariants_hold()
streams_1 = state.open_stream(chunks=[], session=0)
state.invariants_hold()
state.outage(seconds=25.0)
state.invariants_hold()
state.echo(data='', stream=streams_1)
state.invariants_hold()
state.teardown()
"""

_HEAD = "state = StreamMachine_sim_replay_skips_first()\nstreams_0 = state.boot(seed=0, chunks=[], context=0)\n"

# (invariant, where, program)
ONE_BUG = [
    ("no loss at quiescence", "session 0 stream 1", _HEAD
     + "streams_1 = state.open_stream(chunks=[{'kind': 'text', 'seed': 0, 'chars': 0}], session=0)\n"
       "state.drop(fault=Abort(), session=0)\nstate.settle()\nstate.teardown()"),
    ("no exception escapes as anything but a clear error", "session 0 stream 0", _HEAD
     + "state.drop(fault=Abort(), session=0)\nstate.connect()\n"
       "state.set_context(stream=streams_0, value=0)\nstate.connect()\nstate.teardown()"),
    ("no loss at quiescence", "session 0 stream 0", _HEAD
     + "state.drop(fault=Abort(), session=0)\nstate.end(stream=streams_0)\nstate.settle()\nstate.teardown()"),
    ("cancellation survives resume", "session 0 stream 0", _HEAD
     + "state.drop(fault=Abort(), session=0)\nstate.cancel(stream=streams_0)\nstate.settle()\nstate.teardown()"),
    ("session context preserved", "session 0 (client side)", _HEAD
     + "state.drop(fault=Abort(), session=0)\nstate.settle()\nstate.teardown()"),
]
