"""The state machine: ``machine_class(options)`` builds a configured ``StreamMachine``.

``StreamMachine.TestCase`` is what pytest collects; ``run_state_machine_as_test`` and the
``statemodel fuzz`` runner take the class directly.
"""

from __future__ import annotations

from functools import lru_cache

from statemodel.machine.options import MachineOptions
from statemodel.machine.stream_machine import StreamMachine

__all__ = ["MachineOptions", "StreamMachine", "machine_class"]


@lru_cache(maxsize=None)
def machine_class(options: MachineOptions = MachineOptions()) -> type[StreamMachine]:
    """A ``StreamMachine`` subclass bound to ``options``.

    The class name is derived from the options, and the same options always give the same
    class object in a process. Hypothesis keys its example database on the class name (it
    cannot read a generated class's source), and ``record`` is left out of the name, so a
    failure saved by a fuzz worker is found again by ``replay`` (which records) and by
    another machine with the same options.
    """
    name = f"StreamMachine_{options.slug}"
    # Real sockets need the real clock: MockClock's autojump would skip real I/O waits.
    attrs = {"options": options, "real_time": options.transport != "sim", "__module__": __name__}
    return type(name, (StreamMachine,), attrs)
