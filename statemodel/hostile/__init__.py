"""Hostile peers: raw WebSocket attacks on a PROTOCOL.md server, and the Hypothesis machine
that runs them beside honest sessions (`HostileMachine`).

`attacks.ATTACKS` / `attacks.run_attack` work on any dial function and any clock, so the
same vocabulary attacks the reference server in the sim and a user's server on loopback.
"""
