"""Public Hypothesis strategies for resumable-stream testing (payloads, networks, fault schedules)."""
