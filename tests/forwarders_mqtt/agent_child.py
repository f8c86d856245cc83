"""The MQTT forwarder as its own process, for the SIGKILL tests.

``python -m tests.forwarders_mqtt.agent_child OUTBOX_DIR SITE CONFIG_JSON LEASE_DELAY_S``.
The lease delay slows the drain down so that a test can kill things mid-drain; SIGTERM
stops cleanly (the forwarder publishes ``offline``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
from pathlib import Path

from edge_agent.config.models import Mqtt
from edge_agent.forwarders.mqtt import MqttForwarder
from edge_agent.interfaces import OutboxItem
from edge_agent.outbox import Outbox


class SlowOutbox(Outbox):
    delay_s = 0.0

    def lease(self, n: int) -> list[OutboxItem]:
        time.sleep(self.delay_s)  # runs in a worker thread (asyncio.to_thread)
        return super().lease(n)


async def main(directory: Path, site: str, config: Mqtt) -> None:
    outbox = SlowOutbox.open(directory, 50_000_000)
    forwarder = MqttForwarder(config, site, outbox, directory.parent, idle_poll_s=0.01)
    task = asyncio.create_task(forwarder.run())
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    print("started", flush=True)
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        await forwarder.close()
        outbox.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    SlowOutbox.delay_s = float(sys.argv[4])
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], Mqtt.model_validate(json.loads(sys.argv[3]))))
