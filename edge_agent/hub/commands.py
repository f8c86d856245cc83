"""The hub's side of the alarm controls: publish one command on ``{prefix}/{site}/commands``
and wait (bounded) for the site's answer on ``{prefix}/{site}/command-results``.

Used by ``edge-agent hub HUB.yaml alarms SITE ...``: a short-lived MQTT client with the
hub's broker credentials (the broker ACL lets only the hub write a site's command topic),
its own client id and a clean session. It subscribes to the site's results first, then
publishes the command (QoS 1, not retained) and waits for the answer with the same id.
Every command sent and the answer it got are recorded in ``<state_dir>/commands-sent.jsonl``;
the running hub records every answer it hears, late ones too, in ``command-results.jsonl``
(:class:`CommandResultRecorder`; both bounded, rotated). Without an answer in time the
command may still be applied when the site's agent gets it (the broker queues it for the
agent's session); sending it again with the same id returns its result without applying it
twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any, Final

from edge_agent.alerts import format_time_ns
from edge_agent.common.backoff import Backoff
from edge_agent.common.jsonl_log import JsonLinesLog
from edge_agent.common.mqtt_link import Message, MqttError, MqttLink, tls_context
from edge_agent.common.time_units import NS_PER_S
from edge_agent.config.secrets import SecretError, resolve
from edge_agent.errors import EdgeAgentError
from edge_agent.hub.config import HubConfig
from edge_agent.redaction import register_secret
from edge_agent.wire import topics
from edge_agent.wire.commands import BadCommand, CommandResult, encode, parse_result

log = logging.getLogger(__name__)

RESULTS_FILE: Final = "command-results.jsonl"
"""What the running hub heard on every site's ``command-results``."""
SENT_FILE: Final = "commands-sent.jsonl"
"""What ``edge-agent hub ... alarms`` sent and the answer it got (or null)."""
MAX_FOREIGN_ANSWERS: Final = 1000
"""Answers to other commands seen while waiting: more than this and the wait ends."""


class HubCommandError(EdgeAgentError):
    """The command could not be sent (broker unreachable, credentials, TLS files)."""


def sent_log(config: HubConfig, base_dir: Path) -> JsonLinesLog:
    return JsonLinesLog(config.state_path(base_dir) / SENT_FILE)


class CommandResultRecorder:
    """The running hub's record of every site's command results (shared subscription: one
    replica of the group records each), including answers that came after the CLI gave up."""

    def __init__(self, state_dir: Path, prefix: str) -> None:
        self.log = JsonLinesLog(state_dir / RESULTS_FILE)
        self.prefix = prefix
        self.recorded = 0
        self.invalid = 0

    def record(self, topic: str, payload: bytes) -> bool:
        """Record ``payload`` if ``topic`` is a site's command results; False if it is not
        such a topic (the caller handles it). Never raises."""
        site = topics.command_results_site(self.prefix, topic)
        if site is None:
            return False
        try:
            result = parse_result(payload)
        except BadCommand as exc:
            self.invalid += 1
            log.warning(
                "Command result ignored: it does not follow the contract.",
                extra={"site": site, "error": str(exc), "bytes": len(payload)},
            )
            return True
        entry = {"site": site, "id": result.id, "ok": result.ok, "message": result.message}
        _record(self.log, {**entry, **({"repeat": True} if result.repeat else {})})
        self.recorded += 1
        log.info("Command result.", extra=entry)
        return True


def _link(config: HubConfig, base_dir: Path, on_message: Any, results_topic: str) -> MqttLink:
    broker = config.broker
    password: str | None = None
    if broker.password is not None:
        try:
            password = resolve(broker.password, base_dir).reveal()
        except SecretError as exc:
            raise HubCommandError(f"broker.password: {exc}") from exc
        register_secret(password)
    try:
        context = tls_context(broker.tls, base_dir) if broker.tls is not None else None
    except MqttError as exc:
        raise HubCommandError(str(exc)) from exc
    host = "".join(c for c in socket.gethostname() if c.isalnum() or c == "-")[:32] or "host"
    return MqttLink(
        broker.host,
        broker.effective_port,
        f"edge-agent-hub-alarms-{host}-{os.getpid()}",
        tls=context,
        client_certificate=None if broker.tls is None else broker.tls.certificate is not None,
        username=broker.username,
        password=password,
        protocol="5",
        keepalive_s=max(1, round(broker.keepalive / NS_PER_S)),
        backoff=Backoff(0.2, 2.0),
        session_expiry_s=0,
        clean_start=True,
        subscriptions=[(results_topic, 1)],
        on_message=on_message,
    )


async def send_command(
    config: HubConfig, base_dir: Path, site: str, command: dict[str, Any], timeout_s: float
) -> CommandResult | None:
    """Publish ``command`` to ``site`` and return its answer, or None when none came within
    ``timeout_s`` (the whole exchange, connect included). Records both in the results log.
    Raises :class:`HubCommandError` when the command could not be published."""
    prefix = config.broker.topic_prefix
    results_topic = topics.command_results(prefix, site)
    answer: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
    command_id = command.get("id")
    foreign = 0

    def on_message(message: Message) -> None:
        nonlocal foreign
        if message.topic != results_topic or answer.done():
            return
        try:
            result = parse_result(message.payload)
        except BadCommand as exc:
            log.warning("Not a command result; ignored.", extra={"error": str(exc)})
            return
        if result.id == command_id:
            answer.set_result(result)
            return
        foreign += 1
        if foreign >= MAX_FOREIGN_ANSWERS:
            answer.set_exception(HubCommandError("too many answers to other commands; ask again"))

    link = _link(config, base_dir, on_message, results_topic)
    record = sent_log(config, base_dir)
    _record(record, {"site": site, "command": command})
    result: CommandResult | None = None
    try:
        async with asyncio.timeout(timeout_s):
            await link.start()
            await link.wait_connected()
            await link.wait_subscribed()
            await link.publish(topics.commands(prefix, site), encode(command), qos=1)
            result = await answer
    except TimeoutError:
        if not link.connected:
            raise HubCommandError(
                f"broker {config.broker.host}:{config.broker.effective_port} not reachable "
                f"within {timeout_s:g} s: {link.last_error or 'no answer'}"
            ) from None
    except MqttError as exc:
        raise HubCommandError(f"the command was not published: {exc}") from exc
    finally:
        with contextlib.suppress(Exception):
            await link.close()
    _record(
        record,
        {
            "site": site,
            "id": command_id,
            "answer": None
            if result is None
            else {"ok": result.ok, "message": result.message, "repeat": result.repeat},
        },
    )
    return result


def _record(record: JsonLinesLog, entry: dict[str, Any]) -> None:
    try:
        record.append({"time": format_time_ns(time.time_ns()), **entry})
    except OSError as exc:
        log.warning("Command result not recorded.", extra={"error": str(exc)})


__all__ = [
    "RESULTS_FILE",
    "SENT_FILE",
    "CommandResultRecorder",
    "HubCommandError",
    "send_command",
    "sent_log",
]
