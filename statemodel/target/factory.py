"""Plug in your own client/server: ``--target package.module:factory``.

The factory is called as ``factory(options, seed)`` (``options``: the machine's
``MachineOptions``; ``seed``: derive every random choice from it) and returns an object with
the ``Target`` shape (``statemodel.target.base.Target``; docs/TARGETS.md). We check that shape
up front, so a missing method is a clear error naming it, not an ``AttributeError`` three
rules into a run.
"""

from __future__ import annotations

import importlib
import re
from types import SimpleNamespace

from statemodel.net.trace import Trace

SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")

REQUIRED_METHODS = (
    "start", "stop", "dial", "new_client", "apply", "heal", "recovery_bound",
    "expiry_after", "check_bounds", "session_context", "expected_chunks",
)
REQUIRED_ATTRIBUTES = ("can_restart", "max_advance")


def is_factory_spec(text: str) -> bool:
    return bool(SPEC.match(text))


def load_factory(spec: str):
    """The callable named by ``package.module:attr`` (``attr`` may be dotted)."""
    if not is_factory_spec(spec):
        raise ValueError(f"factory target {spec!r} is not of the form package.module:factory")
    module_name, _, attr_path = spec.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"factory target {spec!r}: cannot import module {module_name!r}: {exc}") from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"factory target {spec!r}: module {module_name!r} has no {attr_path!r}") from None
    if not callable(obj):
        raise TypeError(f"factory target {spec!r}: {attr_path!r} is a {type(obj).__name__}, not a callable")
    return obj


def validate_target(target, spec: str = "target"):
    """Raise ``TypeError`` naming every missing or wrong member of the ``Target`` shape."""
    missing = [m for m in REQUIRED_METHODS if not callable(getattr(target, m, None))]
    missing += [a for a in REQUIRED_ATTRIBUTES if not hasattr(target, a)]
    if getattr(target, "can_restart", False):
        missing += [f"{m} (required when can_restart is True)" for m in ("restart_server", "generation_of")
                    if not callable(getattr(target, m, None))]
    if missing:
        raise TypeError(
            f"{spec} returned {type(target).__name__}, which does not implement the Target "
            f"protocol: missing {', '.join(missing)} (see docs/TARGETS.md)"
        )
    if not isinstance(target.can_restart, bool):
        raise TypeError(f"{spec}: can_restart must be a bool, got {target.can_restart!r}")
    try:
        max_advance = float(target.max_advance)
    except (TypeError, ValueError):
        max_advance = float("nan")
    if not max_advance > 0:
        raise TypeError(f"{spec}: max_advance must be a positive number of seconds, got {target.max_advance!r}")
    return target


class FactoryTarget:
    """A user target, checked and wrapped. Everything is delegated to it; it only gains a
    ``net`` with an empty trace if it has none (recordings read ``target.net.trace``), and
    ``generation_of`` = 0 if it cannot restart and has none."""

    def __init__(self, options, seed: int) -> None:
        self.spec = options.target
        factory = load_factory(self.spec)
        self.inner = validate_target(factory(options, seed), f"factory {self.spec!r}")
        if not hasattr(self.inner, "net"):
            self.net = SimpleNamespace(trace=Trace())
        if not callable(getattr(self.inner, "generation_of", None)):
            self.generation_of = lambda session_id: 0  # never restarted: one server generation

    def __getattr__(self, name: str):
        # only called for names not found on the wrapper: the user target's own members
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)
