"""Validity of the client's status-event sequence (PROTOCOL.md, "Status events").

Grammar, per client:
    connected ( disconnected reconnecting(1) … reconnecting(n) connected resumed(outcome) )*
with a final ``disconnected`` allowed when the client closes. Attempts count up from 1
and restart after every successful reconnection; ``resumed`` follows exactly the
reconnections, never the first connection.
"""

from __future__ import annotations

from statemodel.model.violations import InvariantViolation

OUTCOMES = ("recovered", "reset")


class StatusChecker:
    def __init__(self) -> None:
        self.state = "init"
        self.attempt = 0
        self.history: list[tuple] = []

    def feed(self, event: tuple, where: str) -> None:
        kind = event[0]
        expected = self._expected()
        ok = False
        if kind == "connected" and self.state in ("init", "retrying"):
            self.state = "up" if self.state == "init" else "resuming"
            ok = True
        elif kind == "resumed" and self.state == "resuming" and len(event) > 1 and event[1] in OUTCOMES:
            self.state, self.attempt = "up", 0
            ok = True
        elif kind == "disconnected" and self.state in ("up", "resuming"):
            self.state = "down"
            ok = True
        elif kind == "reconnecting" and self.state in ("down", "retrying") and event[1] == self.attempt + 1:
            self.state, self.attempt = "retrying", self.attempt + 1
            ok = True
        if not ok:
            recent = ", ".join(map(str, self.history[-4:])) or "nothing"
            raise InvariantViolation(
                "valid status sequence", where, f"{expected} (after {recent})", str(event)
            )
        self.history.append(event)

    def _expected(self) -> str:
        return {
            "init": "connected",
            "up": "disconnected",
            "resuming": "resumed(recovered|reset) or disconnected",
            "down": "reconnecting(1)",
            "retrying": f"reconnecting({self.attempt + 1}) or connected",
        }[self.state]

    @property
    def connected(self) -> bool:
        return self.state == "up"
