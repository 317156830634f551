"""Which state machine a fuzz run drives, and how it is configured.

The default is ``statemodel.machine:machine_class``; ``STATEMODEL_MACHINE=module:callable``
(or the hidden ``--machine`` option) points elsewhere, e.g. at a toy machine in tests or a
user's own machine with the same ``machine_class(options)`` shape.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from typing import Any, Callable

DEFAULT_MACHINE = "statemodel.machine:machine_class"
ENV_VAR = "STATEMODEL_MACHINE"


class MachineUnavailable(Exception):
    """The machine cannot be loaded or configured (an infrastructure error: exit 2)."""


@dataclasses.dataclass(frozen=True)
class LoadedMachine:
    spec: str
    module: str
    machine_class: Callable[[Any], type]
    options_class: Callable[..., Any]


def machine_spec(explicit: str | None = None) -> str:
    return explicit or os.environ.get(ENV_VAR) or DEFAULT_MACHINE


def load_machine(spec: str | None = None) -> LoadedMachine:
    spec = machine_spec(spec)
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise MachineUnavailable(f"machine {spec!r} must look like 'package.module:callable'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MachineUnavailable(
            f"cannot import the state machine module {module_name!r} ({exc}); "
            f"set {ENV_VAR}=module:callable to use another machine"
        ) from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise MachineUnavailable(f"{module_name!r} has no callable {attr!r}")
    options_class = getattr(module, "MachineOptions", None)
    if options_class is None:
        try:
            options_class = importlib.import_module("statemodel.machine").MachineOptions
        except (ImportError, AttributeError) as exc:
            raise MachineUnavailable(f"{module_name!r} defines no MachineOptions ({exc})") from exc
    return LoadedMachine(spec, module_name, factory, options_class)


def build_options(loaded: LoadedMachine, target: str, transport: str, mutants, record: bool = True):
    try:
        return loaded.options_class(
            target=target, transport=transport, mutants=frozenset(mutants), record=record
        )
    except (TypeError, ValueError) as exc:
        raise MachineUnavailable(f"invalid machine options: {exc}") from exc


def resolve_machine(options, spec: str | None = None) -> type:
    """The configured machine class for ``options`` (``machine_class(options)``)."""
    loaded = load_machine(spec)
    try:
        return loaded.machine_class(options)
    except (TypeError, ValueError, KeyError) as exc:
        raise MachineUnavailable(f"{loaded.spec} rejected the options: {exc}") from exc
