"""Reports of a fuzz run: summary.json, junit.xml, and one folder per failure."""

from statemodel.report.writer import prepare, write

__all__ = ["prepare", "write"]
