"""Reports of a fuzz run: summary.json, junit.xml, and one folder per failure."""

from statemodel.report.writer import write

__all__ = ["write"]
