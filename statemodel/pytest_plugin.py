"""pytest plugin (entry point ``statemodel``): registers the Hypothesis profiles.

Hypothesis' own plugin reads ``--hypothesis-profile`` after plugins load, so the
profiles registered here can be chosen by name.
"""

from statemodel import profiles  # noqa: F401  (registers on import)
