"""Fault layer: one fault vocabulary (``faults``) and three backends that apply it.

``sim`` (in-memory, virtual time, deterministic), ``tcp`` (real loopback proxy, JSON
control API in ``control``), ``netns`` (root: namespace + veth + iptables). ``link`` is
the fault engine sim and tcp share; ``wsframes`` finds WebSocket frame boundaries for
frame-aware faults; ``trace`` records what happened; ``scenario`` runs timed schedules.
Nothing is imported here so that ``statemodel.net.faults`` stays trio-free.
"""
