"""edge-agent: SCADA edge agent.

Readings flow from ``sources`` through ``rules`` into the disk ``outbox`` and out through
``forwarders`` (MQTT to the ``hub``, or MaintainX directly). ``config`` loads and validates
the site file that engineers edit.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
