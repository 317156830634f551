"""pytest plugin (entry point ``statemodel``): registers the Hypothesis profiles, and the
markers of tests that need something outside Python, with one line at the end naming what was
skipped for want of it and how to enable it.

Hypothesis' own plugin reads ``--hypothesis-profile`` after plugins load, so the
profiles registered here can be chosen by name.
"""

from __future__ import annotations

from statemodel import profiles  # noqa: F401  (registers on import)

# marker -> (what it needs, how to enable it)
NEEDS = {
    "redis": ("Redis", "start redis-server on loopback and set STATEMODEL_REDIS_URL=redis://127.0.0.1:6379/0 "
                       "(.ci/run does both)"),
    "browser": ("Chromium", "install chromium (apt-get install chromium; .ci/run does)"),
    "netns": ("root", "run as root on Linux (network namespaces and iptables)"),
}


def pytest_configure(config) -> None:
    for name, (what, _how) in NEEDS.items():
        config.addinivalue_line("markers", f"{name}: needs {what}; skipped with a note when it is missing")
    config._statemodel_needs = {}


def pytest_collection_modifyitems(config, items) -> None:
    needs = config._statemodel_needs
    for item in items:
        marks = [m.name for m in item.iter_markers() if m.name in NEEDS]
        if marks:
            needs[item.nodeid] = marks[0]


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    needs = getattr(config, "_statemodel_needs", {})
    counts: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        mark = needs.get(report.nodeid)
        if mark:
            counts[mark] = counts.get(mark, 0) + 1
    if counts:
        parts = [f"{n} test{'s' if n > 1 else ''} needing {NEEDS[m][0]} ({NEEDS[m][1]})"
                 for m, n in sorted(counts.items())]
        terminalreporter.write_line("statemodel: skipped " + "; ".join(parts), yellow=True)
