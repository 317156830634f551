"""The one exception the model raises: which invariant broke, what was expected, what happened."""

from __future__ import annotations


def describe(value: object, limit: int = 120) -> str:
    """A short, readable rendering of a chunk or value (sizes for big payloads)."""
    if isinstance(value, (bytes, bytearray)):
        head = bytes(value[:24]).hex()
        return f"bytes[{len(value)}] {head}{'…' if len(value) > 24 else ''}"
    if isinstance(value, str) and len(value) > limit:
        return f"str[{len(value)}] {value[:limit]!r}…"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


class InvariantViolation(AssertionError):
    """An invariant failed. ``str()`` reads as: invariant, where, expected, actual."""

    def __init__(self, invariant: str, where: str, expected: str, actual: str) -> None:
        self.invariant = invariant
        self.where = where
        self.expected = expected
        self.actual = actual
        super().__init__(f"{invariant} violated at {where}: expected {expected}; got {actual}")
