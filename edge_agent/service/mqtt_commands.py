"""The hub's door to the alarm controls (MQTT mode): commands on this site's own
``{prefix}/{site}/commands`` only, each answered on ``{prefix}/{site}/command-results``.

The forwarder subscribes to exactly that topic (no wildcard): a command for another site is
never delivered here, and one that arrives on any other topic anyway is counted, logged and
dropped unanswered (it is not ours to answer). Requests are handled as the socket's are
(:class:`~edge_agent.service.alarm_controls.AlarmControls`), at most
:data:`MAX_IN_PROGRESS` at once; beyond that a command is answered ``busy`` (the hub sends
it again with the same id).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Final, Protocol

from edge_agent.wire import topics
from edge_agent.wire.commands import BUSY, CommandResult, encode, result_document

if TYPE_CHECKING:
    from edge_agent.common.mqtt_link import Message
    from edge_agent.service.alarm_controls import AlarmControls

log = logging.getLogger(__name__)

MAX_IN_PROGRESS: Final = 16


class ReplyChannel(Protocol):
    """What the MQTT forwarder offers the commands (see ``MqttForwarder.listen``)."""

    def listen(self, topic: str, handler: Any) -> None: ...

    def publish_reply(self, topic: str, payload: bytes) -> bool: ...


class MqttCommands:
    """Receives this site's commands from the forwarder's connection and answers them."""

    def __init__(self, controls: AlarmControls, prefix: str, site: str) -> None:
        self.controls = controls
        self.topic = topics.commands(prefix, site)
        self.results_topic = topics.command_results(prefix, site)
        self._channel: ReplyChannel | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, channel: ReplyChannel) -> None:
        """Listen on ``channel`` (a new forwarder after a reload replaces the old one)."""
        self._channel = channel
        channel.listen(self.topic, self.on_message)

    def on_message(self, message: Message) -> None:
        """On the event loop, for each message of the command topic."""
        if message.topic != self.topic:
            self.controls.counters.count("mqtt", "rejected")
            log.warning(
                "Alarm command on another topic than this site's; dropped.",
                extra={"topic": message.topic[:300], "expected": self.topic},
            )
            return
        if len(self._tasks) >= MAX_IN_PROGRESS:
            self.controls.counters.count("mqtt", "unanswered")
            self._reply(
                result_document(CommandResult(None, False, f"{BUSY} send again"), time.time_ns())
            )
            return
        task = asyncio.get_running_loop().create_task(
            self._handle(message.payload), name="alarm-command"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, payload: bytes) -> None:
        try:
            answer = await self.controls.handle(payload, "mqtt")
        except Exception:
            log.exception("Alarm command over MQTT failed.")
            return
        self._reply(answer)

    def _reply(self, answer: dict[str, Any]) -> None:
        channel = self._channel
        if channel is None or not channel.publish_reply(self.results_topic, encode(answer)):
            self.controls.counters.unsent_answers += 1
            log.warning(
                "Answer to an alarm command not published (not connected); the hub asks "
                "again with the same id.",
                extra={"id": answer.get("id")},
            )

    async def close(self) -> None:
        """Cancel what is in progress (the agent stops)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)


__all__ = ["MAX_IN_PROGRESS", "MqttCommands"]
