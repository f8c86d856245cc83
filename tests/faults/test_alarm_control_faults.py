"""Fault suite, boundary: the alarm controls of a running agent — its control socket and its
site's command topic on a real mosquitto (MQTT mode).

Hypothesis generates garbage: bytes that are not JSON, JSON of the wrong shape, commands
with wrong or missing fields and unknown rules, ids that are not ids, payloads too large,
nesting too deep. Invariants: the agent keeps running; every request gets exactly one
answer (``ok: false``), on the socket line or on ``command-results``; every one is counted;
none is applied (no rule changes state, nothing audited as applied); a healthy rule's
alarm is still delivered afterwards.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as paho
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.common.schema_version import MAX_VERSION, NewerFormatError
from edge_agent.service.command_ledger import CommandLedger
from edge_agent.service.state_formats import check_state_folder
from edge_agent.wire.commands import CommandResult, command_document, encode
from tests.conftest import Broker, free_port
from tests.forwarders_mqtt.conftest import Subscriber
from tests.service.conftest import (
    AgentProcess,
    mqtt_forwarding,
    site_document,
    wait_until,
    write_site,
)

SITE = "test-plant"
RULES = {"p101-vibration-high", "m201-current-high"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
not_a_rule = st.text(max_size=30).filter(lambda text: text not in RULES)
command_shaped = st.fixed_dictionaries(
    {"schema": st.just("edge-agent/command@1")},
    optional={
        "id": st.one_of(st.from_regex(r"[A-Za-z0-9._:-]{1,20}", fullmatch=True), json_values),
        "action": st.one_of(
            st.sampled_from(["shelve", "unshelve", "oos", "return", "ack", "list"]), json_values
        ),
        "rule": st.one_of(
            not_a_rule, json_values.filter(lambda v: not isinstance(v, str) or v not in RULES)
        ),
        "asset": st.one_of(st.sampled_from(["X", "no-such-asset"]), json_values),
        "by": json_values,
        "reason": json_values,
        "for": st.one_of(st.sampled_from(["2h", "0s", "-1h", "99999h", "1e9"]), json_values),
        "until_clear": json_values,
        "note": json_values,
        "extra": json_values,
    },
).map(lambda d: json.dumps(d).encode())
garbage = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    command_shaped,
    st.integers(min_value=1, max_value=3).map(lambda k: b"[" * (10_000 * k)),  # too deep
    st.integers(min_value=16_385, max_value=100_000).map(lambda n: b" " * n),  # too large
)


class Running:
    def __init__(self, agent: AgentProcess, broker: Broker, answers: Subscriber) -> None:
        self.agent = agent
        self.broker = broker
        self.answers = answers
        self.published = 0
        self.socket_lines = 0

    def metric_total(self, via: str) -> float:
        return sum(
            self.agent.metric("edge_agent_alarm_commands_total", via=via, outcome=outcome) or 0
            for outcome in ("applied", "refused", "rejected", "repeated", "unanswered", "stale")
        )


@pytest.fixture(scope="module")
def running(plant: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("controls")
    broker = Broker(port=free_port(), workdir=root / "mosquitto")
    broker.workdir.mkdir()
    broker.start()
    health = free_port()
    document = site_document(
        modbus_port=plant.port,
        health_port=health,
        storage=root / "state",
        forwarding=mqtt_forwarding(broker, confirm="broker"),
    )
    site = write_site(root / "site.yaml", document)
    agent = AgentProcess(site, root / "state", health, root / "agent.log")
    answers = Subscriber(broker.port, "edge/v1/+/command-results").start()
    agent.start()
    try:
        agent.wait_serving()
        wait_until(lambda: agent.metric("edge_agent_forwarder_connected") == 1, 30, "MQTT")
        yield Running(agent, broker, answers)
    finally:
        answers.stop()
        agent.kill()
        broker.kill()


def publish_all(broker: Broker, topic: str, payloads: list[bytes]) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        for payload in payloads:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


@settings(max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(garbage, min_size=1, max_size=8))
def test_garbage_on_the_command_topic_is_answered_once_and_never_applied(
    running: Running, payloads: list[bytes]
) -> None:
    publish_all(running.broker, f"edge/v1/{SITE}/commands", payloads)
    running.published += len(payloads)
    wait_until(lambda: len(running.answers.messages) >= running.published, 30, "every answer")
    answers = running.answers.payloads()
    assert len(answers) == running.published  # one each, none twice
    assert not [a for a in answers if a["ok"]]
    assert running.agent.alive(), running.agent.logs()[-3000:]
    wait_until(lambda: running.metric_total("mqtt") == running.published, 10, "the counts")


@settings(max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(garbage.map(lambda raw: raw.replace(b"\n", b" ")), min_size=1, max_size=8))
def test_garbage_on_the_socket_is_answered_line_by_line_and_never_applied(
    running: Running, lines: list[bytes]
) -> None:
    path = running.agent.state_dir / "control.sock"
    for line in lines:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(15)
            sock.connect(str(path))
            sock.sendall(line + b"\n")
            answer = json.loads(sock.makefile("rb").readline())
        running.socket_lines += 1
        assert answer["ok"] is False
    assert running.agent.alive(), running.agent.logs()[-3000:]
    assert running.metric_total("socket") == running.socket_lines


def test_after_the_garbage_nothing_was_applied_and_alarms_still_flow(
    running: Running, plant: Any, background: Any
) -> None:
    agent = running.agent
    audit_path = agent.state_dir / "alarm-audit.jsonl"
    audit = [json.loads(line) for line in audit_path.read_text().splitlines()]
    assert audit and not [line for line in audit if line.get("outcome") == "applied"]
    assert agent.metric("edge_agent_rules_shelved") == 0
    assert agent.metric("edge_agent_rules_out_of_service") == 0
    alerts = Subscriber(running.broker.port, f"edge/v1/{SITE}/alerts").start()
    try:
        background.run(lambda: plant.set_value("m201_current", 70.0))

        def activated() -> bool:
            return any(
                p.get("rule") == "m201-current-high" and p.get("event") == "activated"
                for p in alerts.payloads()
            )

        wait_until(activated, 30, "the healthy rule's alarm")
    finally:
        background.run(lambda: plant.set_value("m201_current", 35.0))
        alerts.stop()
    assert agent.alive()


def test_a_command_queued_too_long_or_dated_ahead_is_refused_and_counted(
    running: Running,
) -> None:
    """Commands the hub queued while the site was offline (an hour, a week), or dated an
    hour ahead: each answered once, ``ok: false`` saying why, counted ``stale``, never
    applied; one of now passes the check (and is refused by the engine: not out of service)."""
    hour = 3600 * 10**9
    now = time.time_ns()
    ages = {"hour": -hour, "week": -7 * 24 * hour, "ahead": hour, "fresh": 0}
    payloads = [
        encode(
            command_document(
                f"age-{name}",
                "return",
                by="hub",
                time_ns=now + offset,
                rule="m201-current-high",
            )
        )
        for name, offset in ages.items()
    ]
    before = running.agent.metric("edge_agent_alarm_commands_total", via="mqtt", outcome="stale")
    publish_all(running.broker, f"edge/v1/{SITE}/commands", payloads)
    running.published += len(payloads)
    wait_until(lambda: len(running.answers.messages) >= running.published, 30, "every answer")
    answers = {a["id"]: a for a in running.answers.payloads() if str(a["id"]).startswith("age-")}
    assert sorted(answers) == sorted(f"age-{name}" for name in ages)
    assert not [a for a in answers.values() if a["ok"]]
    assert "ago" in answers["age-hour"]["message"]
    assert "queued while the site was offline" in answers["age-week"]["message"]
    assert "ahead" in answers["age-ahead"]["message"]
    assert "ago" not in answers["age-fresh"]["message"]
    stale = running.agent.metric("edge_agent_alarm_commands_total", via="mqtt", outcome="stale")
    assert (stale or 0) - (before or 0) == 3
    wait_until(lambda: running.metric_total("mqtt") == running.published, 10, "the counts")


@settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    found=st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
    )
)
def test_the_command_ledgers_version_is_read_refused_or_damage(
    tmp_path_factory: pytest.TempPathFactory, found: object
) -> None:
    """Whatever version the ledger says: read, refused as a later release's (before the
    agent opens anything), or damage (started empty); never another exception."""
    directory = tmp_path_factory.mktemp("ledger")
    CommandLedger(directory).record(CommandResult("c-1", True, "done"))
    path = directory / "alarm-commands.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "version": found}))
    later = type(found) is int and 1 < found <= MAX_VERSION
    if later:
        with pytest.raises(NewerFormatError):
            check_state_folder(directory)
        with pytest.raises(NewerFormatError):
            CommandLedger(directory)
        return
    ledger = CommandLedger(directory)
    assert len(ledger) == (1 if found in (None, 1) and type(found) is not bool else 0)
