"""statemodel: a property-based state-machine tester for resumable WebSocket streams on trio."""

__version__ = "0.1.0"
