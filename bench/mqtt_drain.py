"""A 10,000-event backlog drained to a real mosquitto by the agent's MQTT forwarder with the
hub's end-to-end confirmation on, beside paho alone publishing the same at QoS 1, in one run.

1. paho alone: one client, the same 10,000 alert payloads published at QoS 1 with an
   in-flight window of 100, timed until the last PUBACK (the floor: transport only);
2. the agent's forwarder, ``confirm: hub``: mosquitto, ``edge-agent hub`` and the
   MaintainX emulator as processes; each event leaves the outbox on the hub's result
   (``bench/outbox.py:bench_hub_confirmed``, which primes the hub with the events first);
3. paho alone again, so that the ratio is taken against the floor measured around it;
4. the floor of any confirmation in Python: paho publishing the same backlog while a
   second paho client in another process (the least a hub does) reads each alert, parses
   its JSON and publishes a result at QoS 1, timed until the publisher has every result.

Goal (issue 16): the confirmed drain within 1.5x paho alone; (4) says how near a hub
written with paho can come at all.

    .venv/bin/python bench/mqtt_drain.py
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from outbox import bench_hub_confirmed, hub_event, start_mosquitto  # noqa: E402

BACKLOG = 10_000
INFLIGHT = 100


def paho_alone(port: int, payloads: list[bytes]) -> float:
    """Seconds to publish every payload at QoS 1 until its PUBACK, connect excluded."""
    import paho.mqtt.client as mqtt

    done = threading.Event()
    acked = 0

    def on_publish(*_: object) -> None:
        nonlocal acked
        acked += 1
        if acked == len(payloads):
            done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-paho-alone")
    client.max_inflight_messages_set(INFLIGHT)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        started = time.perf_counter()
        for payload in payloads:
            client.publish("edge/v1/site-a/alerts", payload, qos=1)
        if not done.wait(120):
            raise RuntimeError(f"only {acked} of {len(payloads)} acknowledged")
        return time.perf_counter() - started
    finally:
        client.disconnect()
        client.loop_stop()


def echo_hub(port: int, ready: multiprocessing.synchronize.Event) -> None:
    """The least a hub does: every alert read, parsed, answered at QoS 1 (own process)."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-echo-hub")
    client.max_inflight_messages_set(INFLIGHT)

    def on_message(_c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        event = json.loads(message.payload)
        answer = {"event_id": event["event_id"], "status": "ok"}
        client.publish("edge/v1/site-a/results", json.dumps(answer).encode(), qos=1)

    def on_subscribe(*_: object) -> None:
        ready.set()

    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.connect("127.0.0.1", port)
    client.subscribe("edge/v1/site-a/alerts", qos=1)
    client.loop_forever()


def paho_round_trip(port: int, payloads: list[bytes]) -> float:
    """Seconds until every payload published at QoS 1 has its answer from :func:`echo_hub`."""
    import paho.mqtt.client as mqtt

    ready = multiprocessing.get_context("fork").Event()
    hub = multiprocessing.get_context("fork").Process(target=echo_hub, args=(port, ready))
    hub.start()
    done = threading.Event()
    subscribed = threading.Event()
    answered = 0

    def on_message(*_: object) -> None:
        nonlocal answered
        answered += 1
        if answered == len(payloads):
            done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-paho-round-trip")
    client.max_inflight_messages_set(INFLIGHT)
    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect("127.0.0.1", port)
    client.subscribe("edge/v1/site-a/results", qos=1)
    client.loop_start()
    try:
        if not (ready.wait(30) and subscribed.wait(30)):
            raise RuntimeError("the echo hub did not subscribe")
        started = time.perf_counter()
        for payload in payloads:
            client.publish("edge/v1/site-a/alerts", payload, qos=1)
        if not done.wait(120):
            raise RuntimeError(f"only {answered} of {len(payloads)} answered")
        return time.perf_counter() - started
    finally:
        client.disconnect()
        client.loop_stop()
        hub.kill()
        hub.join()


def main() -> int:
    payloads = [json.dumps(hub_event(i, 0)).encode() for i in range(BACKLOG)]
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-drain-") as tmp:
        work = Path(tmp)
        broker, port = start_mosquitto(work)
        try:
            floor = [paho_alone(port, payloads)]
            confirmed = bench_hub_confirmed(work, BACKLOG)
            floor.append(paho_alone(port, payloads))
            round_trip = paho_round_trip(port, payloads)
        finally:
            broker.kill()
            broker.wait()
    paho_s = statistics.median(floor)
    print(
        f"paho alone, QoS 1, inflight {INFLIGHT}: "
        + ", ".join(f"{s:.2f} s" for s in floor)
        + f" ({BACKLOG / paho_s:,.0f}/s)"
    )
    print(
        f"paho round trip (a paho echo hub answers each at QoS 1): {round_trip:.2f} s"
        f" -> {round_trip / paho_s:.2f}x paho alone (the floor of a confirmation in Python)"
    )
    for key, seconds in confirmed.items():
        if key.startswith("hub_confirmed_drain"):
            print(f"{key}: {seconds:.2f} s -> {seconds / paho_s:.2f}x paho alone (goal <= 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
