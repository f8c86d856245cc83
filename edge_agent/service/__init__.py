"""The agent as a long-running service.

``pipeline`` runs sources → rules → outbox → forwarder as named asyncio tasks (``wiring``
builds them, ``rules_loop`` is the rules task, ``handover`` moves alert messages from the
rule state into the outbox); ``reload``
swaps in a changed site file; ``health`` serves ``/healthz``, ``/readyz`` and ``/metrics``
(collected by ``metrics``); ``logs`` sets up one-event-per-line logging that never shows a
secret; ``sdnotify`` speaks systemd's notify protocol.
"""
