"""Hypothesis' pareto front without recomputing every member's sort key on each example.

With an example database (the fuzz runner always has one: the user's or one in memory) and
a machine that calls ``hypothesis.target()`` (StreamMachine does), Hypothesis adds every
valid example to a pareto front (``internal.conjecture.pareto``). Each addition sorts the
example in and compares it with up to ~20 front members, and every comparison recomputes
``sort_key(nodes)``, ``choice_to_index`` over all of both examples' choices: ~20 CPU ms per
StreamMachine example, 12% of a ``statemodel fuzz`` run (issue 14). A result's nodes never
change, so :func:`cached_sort_keys` memoises the key per nodes object for one run: the same
keys, the same comparisons, the same draws from Hypothesis' random, the same examples.

This reads Hypothesis internals; where they differ it does nothing (slower, never different).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Iterator

__all__ = ["cached_sort_keys", "memoised"]

try:
    from hypothesis.internal.conjecture import pareto as _pareto

    _pareto.sort_key  # noqa: B018 - the name the front and dominance() look up at call time
except (ImportError, AttributeError):  # pragma: no cover - other Hypothesis versions
    _pareto = None

# Front members and the examples being added: a front rarely holds more than a few dozen.
# Each entry keeps an example's nodes alive (tens of KiB for a 50-step program): a bound
# well above the front, well below the worker's memory budget.
CACHE_SIZE = 128


def memoised(key: Callable, size: int = CACHE_SIZE) -> Callable:
    """``key(nodes)`` remembered for the last ``size`` nodes objects. An entry keeps its
    nodes alive and is used only for that very object, so a recycled ``id`` never hits."""
    cache: OrderedDict[int, tuple[object, object]] = OrderedDict()

    def sort_key(nodes):
        entry = cache.get(id(nodes))
        if entry is not None and entry[0] is nodes:
            cache.move_to_end(id(nodes))
            return entry[1]
        value = key(nodes)
        cache[id(nodes)] = (nodes, value)
        if len(cache) > size:
            cache.popitem(last=False)
        return value

    sort_key.cache = cache  # type: ignore[attr-defined]  # for tests
    return sort_key


@contextlib.contextmanager
def cached_sort_keys() -> Iterator[None]:
    """Memoise the pareto front's sort keys for the block (one Hypothesis run)."""
    if _pareto is None:
        yield
        return
    saved = _pareto.sort_key
    _pareto.sort_key = memoised(saved)
    try:
        yield
    finally:
        _pareto.sort_key = saved
