"""The pure reference model: what was asked for, what must be delivered, what the protocol allows.

No trio import. The state machine feeds it the operations it performed and the
observations it made; every observation is checked the moment it is recorded, and
the machine's invariants read the rest after every step.
"""

from statemodel.model.violations import InvariantViolation
from statemodel.model.world import Model, StreamKey

__all__ = ["InvariantViolation", "Model", "StreamKey"]
