"""The no-unhandled-exception invariant: a traceback logged by the stream code is a failure.

The reference server survives a crashing connection handler by logging it and dropping the
connection; trio-websocket logs its own surprises. Either way a peer saw no documented
close code and the bug went by unnoticed unless someone read the log. `TracebackWatch`
collects, from the moment it is attached, every log record of ``statemodel.*`` or
``trio-websocket`` at ERROR with a traceback, from trio-websocket at WARNING and up with
one, and any ERROR of the stream code (its contained internal errors are logged as one line
without the traceback), so a machine can fail the step that caused it (`check`). A logged
exception of the tester's own (Hypothesis', or statemodel's machine side called back from the
stream code: ``statemodel.blame``) is raised as a ``TesterError``, not as the target's failure.
"""

from __future__ import annotations

import logging
import traceback

from statemodel.blame import TesterError, tester_fault, tester_message
from statemodel.model import InvariantViolation

WATCHED = ("statemodel", "trio-websocket")


class TracebackWatch(logging.Handler):
    """Attach to the root logger (``with watch:`` or `attach`/`detach`); records pile up in
    ``records`` until `check` raises on the first one."""

    def __init__(self, names: tuple[str, ...] = WATCHED) -> None:
        super().__init__(logging.WARNING)
        self.names = names
        self.records: list[logging.LogRecord] = []
        self._saved: dict[str, tuple[int, bool]] = {}

    def _watched(self, record: logging.LogRecord) -> bool:
        return any(record.name == n or record.name.startswith(n + ".") for n in self.names)

    def emit(self, record: logging.LogRecord) -> None:
        if not self._watched(record):
            return
        if record.exc_info and (record.levelno >= logging.ERROR or record.name.startswith("trio-websocket")):
            self.records.append(record)
        elif record.levelno >= logging.ERROR and record.name.startswith("statemodel.stream"):
            self.records.append(record)  # a contained failure of the server's own, logged as one line

    def attach(self) -> "TracebackWatch":
        for name in self.names:  # let WARNING+ through however the logger was configured
            logger = logging.getLogger(name)
            self._saved[name] = (logger.level, logger.disabled)
            if logger.getEffectiveLevel() > logging.WARNING:
                logger.setLevel(logging.WARNING)
            logger.disabled = False
            logger.addHandler(self)
        return self

    def detach(self) -> None:
        for name, (level, disabled) in self._saved.items():
            logger = logging.getLogger(name)
            logger.removeHandler(self)
            logger.setLevel(level)
            logger.disabled = disabled
        self._saved.clear()

    def __enter__(self) -> "TracebackWatch":
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()

    def check(self, where: str = "server or client") -> None:
        """Raise on the first collected traceback (and forget it, so it is reported once)."""
        if not self.records:
            return
        record, count = self.records[0], len(self.records)
        self.records.clear()
        exc = record.exc_info[1] if record.exc_info else None
        whose = tester_fault(exc) if exc is not None else None
        if whose is not None:
            raise TesterError(tester_message(exc, f"{record.name} logged it"), whose) from exc
        raise InvariantViolation("no unhandled exception", where,
                                 "every failure contained and answered with a documented close code, "
                                 "no traceback logged", describe(record, count))


def describe(record: logging.LogRecord, count: int = 1) -> str:
    """One line: logger, message and the exception at the bottom of the traceback."""
    exc = record.exc_info[1] if record.exc_info else None
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    where = ""
    if exc is not None and exc.__traceback__ is not None:
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        where = f" at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} ({frame.name})"
    more = f" (+{count - 1} more)" if count > 1 else ""
    caught = f": {exc!r}{where}" if exc is not None else ""
    return f"{record.name} logged {record.levelname} {record.getMessage()!r}{caught}{more}"[:600]
