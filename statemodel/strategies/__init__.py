"""Public Hypothesis strategies for resumable-stream testing: ``statemodel.strategies.payloads``
(chunk specs, payloads, text) and ``statemodel.strategies.faults`` (faults, network profiles,
fault schedules).

The modules live in the repository's top-level ``strategies/`` folder (the layout's place for
them); this package serves them under ``statemodel.strategies`` by pointing its ``__path__``
there, so no one has to import the bare name ``strategies``, which a user's own
``strategies.py`` or ``strategies/`` package would shadow (or be shadowed by).
"""

from pathlib import Path

__path__ = [str(Path(__file__).resolve().parent.parent.parent / "strategies")]
