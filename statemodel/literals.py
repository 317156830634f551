"""Generation that does not depend on which modules happen to be loaded.

Hypothesis (6.13x+) mixes the literals of every *local* module loaded in the process into its
draws (``providers._get_local_constants``; "local" is any file outside site-packages and the
stdlib, test files excepted). For a state machine that makes what a seed generates depend on
things a seed should not: whether statemodel is an editable checkout (local) or pip-installed
(site-packages), which modules a pytest run imported before it, and every literal anyone adds
to statemodel or to a user's helper modules. So for a whole run of a machine (``held()``:
around the fuzz runner's Hypothesis runs and a bridge machine's ``TestCase``) that pool is
empty; Hypothesis' fixed global constants stay. It must cover the whole run, not only a
machine's lifetime: Hypothesis also draws between examples (the prefix of the next one).
Replays are unaffected either way (they replay choices, not draws). Call
``run_state_machine_as_test`` inside ``held()`` to get the same.

This reads Hypothesis internals; where they differ it does nothing (generation then depends
on loaded modules again, as it does in plain Hypothesis), so a Hypothesis upgrade cannot break
a run.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

__all__ = ["held", "hold", "release"]

_lock = threading.Lock()
_holders = 0
_original: Callable | None = None

try:
    from hypothesis.internal.conjecture import providers as _providers
    from hypothesis.internal.constants_ast import Constants as _Constants

    _EMPTY = _Constants()
    _providers._get_local_constants  # noqa: B018 - the hook we replace must exist
    _providers.CONSTANTS_CACHE.cache.clear  # noqa: B018 - and the cache we must empty
except (ImportError, AttributeError):  # pragma: no cover - other Hypothesis versions
    _providers = None


def _empty_pool():
    return _EMPTY


def _clear_cache() -> None:
    # CONSTANTS_CACHE holds (global, local) permitted constants per draw kind, computed from
    # whichever pool was active: it must not carry one pool's constants into the other.
    _providers.CONSTANTS_CACHE.cache.clear()


def hold() -> None:
    """Empty the local-constants pool until the matching :func:`release` (nests)."""
    global _holders, _original
    if _providers is None:
        return
    with _lock:
        _holders += 1
        if _holders == 1:
            _original = _providers._get_local_constants
            _providers._get_local_constants = _empty_pool
            _clear_cache()


def release() -> None:
    """Undo one :func:`hold`; the last one restores Hypothesis' own pool."""
    global _holders, _original
    if _providers is None:
        return
    with _lock:
        if _holders == 0:
            return
        _holders -= 1
        if _holders == 0:
            _providers._get_local_constants = _original
            _original = None
            _clear_cache()


@contextlib.contextmanager
def held() -> Iterator[None]:
    """:func:`hold` for the block."""
    hold()
    try:
        yield
    finally:
        release()
