"""Fuzz runs: workers, shared example database, progress, merged results.

``run(FuzzConfig) -> FuzzResult``; ``resolve_machine(options)`` picks the machine.
"""

from statemodel.fuzz.config import Failure, FuzzConfig, FuzzResult, WorkerResult
from statemodel.fuzz.database import DatabaseError, open_database
from statemodel.fuzz.machine import MachineUnavailable, load_machine, resolve_machine
from statemodel.fuzz.workers import run

__all__ = [
    "DatabaseError", "Failure", "FuzzConfig", "FuzzResult", "MachineUnavailable",
    "WorkerResult", "load_machine", "open_database", "resolve_machine", "run",
]
