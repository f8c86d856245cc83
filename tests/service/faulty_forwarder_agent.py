"""`edge-agent` whose MQTT forwarder has a bug: it raises as it starts.

A fault-injection launcher (run as ``python faulty_forwarder_agent.py run SITE``). No real
fault is left that ends a task (that is the point of the hardening), so the supervisor's
path from a dead task to the exit status is shown with an injected one.
"""

from __future__ import annotations

import sys

from edge_agent.cli import main
from edge_agent.forwarders.mqtt import MqttForwarder

INJECTED = "injected fault: a bug in the forwarder"


async def _raises(self: MqttForwarder) -> None:
    raise RuntimeError(INJECTED)


def inject() -> None:
    """Every MQTT forwarder built from now on raises at its start."""
    MqttForwarder._prepare_outbox = _raises  # type: ignore[method-assign]


if __name__ == "__main__":
    inject()
    sys.exit(main(sys.argv[1:]))
