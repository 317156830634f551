"""Soak: long real-loopback runs that look for leaks (RSS, fds, tasks) as well as wrong bytes.

`runner.soak(SoakConfig)` is the whole run; `statemodel soak` is its command line.
"""

from statemodel.soak.runner import SoakConfig, SoakResult, soak, summary_lines, write_report

__all__ = ["SoakConfig", "SoakResult", "soak", "summary_lines", "write_report"]
