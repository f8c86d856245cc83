"""edge-agent: SCADA edge agent.

Readings flow from ``sources`` through ``rules`` into the disk ``outbox`` and out through
``forwarders`` (MQTT to the ``hub``, or MaintainX directly). ``config`` loads and validates
the site file that engineers edit.
"""

# The one source of the version (pyproject.toml reads it): raised with every release, so that
# an upgrade installs new code (see docs/operations.md, "Upgrade").
__version__ = "0.2.0.dev0"

__all__ = ["__version__"]
