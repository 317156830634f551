"""Validity of the client's status-event sequence (PROTOCOL.md, "Status events").

Grammar, per client (attempts count up from 1 and restart at every successful connection):
    session   := attempt* connected (drop attempt* connected resumed)*
    drop      := disconnected(reason)
    attempt   := disconnected(reason) reconnecting(n)    # a failed try also reports why
``resumed(recovered|reset)`` follows every reconnection of a session that existed, and
never the first connection of a client.
"""

from __future__ import annotations

from statemodel.model.violations import InvariantViolation

OUTCOMES = ("recovered", "reset")


class StatusChecker:
    def __init__(self) -> None:
        self.state = "init"
        self.had_session = False
        self.attempt = 0
        self.history: list[tuple] = []

    def feed(self, event: tuple, where: str) -> None:
        kind = event[0]
        expected = self._expected()
        ok = True
        if kind == "connected" and self.state in ("init", "retrying"):
            self.state = "resuming" if self.had_session else "up"
            self.had_session, self.attempt = True, 0
        elif kind == "resumed" and self.state == "resuming" and len(event) > 1 and event[1] in OUTCOMES:
            self.state = "up"
        elif kind == "disconnected" and self.state in ("init", "up", "resuming", "retrying"):
            self.state = "down"
        elif kind == "reconnecting" and self.state == "down" and event[1] == self.attempt + 1:
            self.state, self.attempt = "retrying", self.attempt + 1
        else:
            ok = False
        if not ok:
            recent = ", ".join(map(str, self.history[-4:])) or "nothing"
            raise InvariantViolation(
                "valid status sequence", where, f"{expected} (after {recent})", str(event)
            )
        self.history.append(event)

    def _expected(self) -> str:
        return {
            "init": "connected or disconnected",
            "up": "disconnected",
            "resuming": "resumed(recovered|reset) or disconnected",
            "down": f"reconnecting({self.attempt + 1})",
            "retrying": "connected or disconnected",
        }[self.state]

    @property
    def connected(self) -> bool:
        return self.state == "up"
