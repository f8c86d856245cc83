"""The agent as a long-running service.

``pipeline`` wires sources → rules → outbox → forwarder as named asyncio tasks; ``reload``
swaps in a changed site file; ``health`` serves ``/healthz``, ``/readyz`` and ``/metrics``
(collected by ``metrics``); ``logs`` sets up one-event-per-line logging that never shows a
secret; ``sdnotify`` speaks systemd's notify protocol.
"""
