"""The server the target tests start (``statemodel.target.served``), importable by name.

A named module, not conftest.py, so that test files can import it unambiguously."""

from statemodel.target.served import script_server

__all__ = ["script_server"]
