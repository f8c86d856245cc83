"""The agent's own CPU per OPC UA notification, in one process, without a server: a
publish response of 10,000 data changes (Double values with source and server times, as
the simulator sends them) is decoded (by the agent's lean decoder where the checkout has
one, else by asyncua), handed to the source's subscription
callback, turned into readings, and offered to the history recorder; each stage is
timed in CPU seconds (``time.process_time``), best and median of the repetitions.

A whole agent (``bench/opcua_subscribe.py``) measures the same path with everything else
beside it, but on a loaded machine its simulator writes a different number of changes
in each window; this one holds the work fixed, so two checkouts compare stage by stage.
``--other-tree DIR`` runs the same in that checkout (its modules first on the path),
alternating with this one.

    .venv/bin/python bench/opcua_notifications.py --other-tree ../before [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ITEMS = 10_000
REPEATS = 15
REPO = Path(__file__).resolve().parent.parent


def publish_response_bytes(items: int, flip: bool) -> bytes:
    """A PublishResponse of ``items`` data changes, encoded as a server sends it."""
    from asyncua import ua
    from asyncua.ua.ua_binary import struct_to_binary

    stamp = datetime.now(UTC) - timedelta(seconds=1)
    notification = ua.DataChangeNotification()
    notification.MonitoredItems = [
        ua.MonitoredItemNotification(
            ClientHandle=handle,
            Value=ua.DataValue(
                ua.Variant(handle + (0.5 if flip else 0.0), ua.VariantType.Double),
                SourceTimestamp=stamp + timedelta(microseconds=handle),
                ServerTimestamp=stamp + timedelta(microseconds=handle),
            ),
        )
        for handle in range(1, items + 1)
    ]
    response = ua.PublishResponse()
    response.Parameters.SubscriptionId = 1
    response.Parameters.NotificationMessage.SequenceNumber = 1
    response.Parameters.NotificationMessage.NotificationData = [notification]
    return bytes(struct_to_binary(response))


def measure(items: int, repeats: int) -> dict[str, list[float]]:
    """CPU seconds of each stage, per repetition (run inside the checkout measured)."""
    from asyncua import ua
    from asyncua.common.subscription import Subscription, SubscriptionItemData
    from asyncua.common.utils import Buffer
    from asyncua.ua.ua_binary import struct_from_binary

    from edge_agent.config.models import Defaults, History, OpcUa, Sensor
    from edge_agent.history.recorder import HistoryRecorder
    from edge_agent.sources.opcua import subscription as subscription_module
    from edge_agent.sources.opcua.source import OpcUaSource

    sensors = {f"t{h:05d}": Sensor(connection="ua1", node=f"ns=2;s=N{h}") for h in range(items)}
    connection = OpcUa.model_validate(
        {"protocol": "opcua", "endpoint": "opc.tcp://127.0.0.1:1/", "mode": "subscribe"}
    )
    source = OpcUaSource("ua1", connection, sensors, Defaults(), Path())
    handles = dict(enumerate(sensors, start=1))
    observer = subscription_module._ActivityObserver()
    subscription = Subscription(
        SimpleNamespace(observer=observer), ua.CreateSubscriptionParameters()
    )  # type: ignore[arg-type]
    subscription.subscription_id = 1
    for handle in handles:  # asyncua's own callback looks each handle up
        data = SubscriptionItemData()
        data.node = SimpleNamespace()  # type: ignore[assignment]
        data.client_handle = handle
        subscription._monitored_items[handle] = data
    lean = (
        "reading_from_lean" in inspect.signature(subscription_module._DataChangeHandler).parameters
    )
    if lean:
        from edge_agent.sources.opcua.lean_decode import decode_publish_response

        handler = subscription_module._DataChangeHandler(
            source,
            source.reading_from,
            handles,
            maxsize=4 * items,
            reading_from_lean=source._values.reading_from_lean,
        )

        def decode(data: bytes) -> Any:
            response, was_lean = decode_publish_response(data, lambda subscription_id: True)
            assert was_lean
            return response

    else:
        handler = subscription_module._DataChangeHandler(
            source, source.reading_from, handles, maxsize=4 * items
        )

        def decode(data: bytes) -> Any:
            return struct_from_binary(ua.PublishResponse, Buffer(data))

    if len(inspect.signature(handler.attach).parameters) == 2:  # (client, subscription)
        callbacks = {1: subscription.publish_callback}
        handler.attach(
            SimpleNamespace(
                uaclient=SimpleNamespace(
                    _subscription_callbacks=callbacks,
                    observer=observer,
                    session=SimpleNamespace(_send_request=lambda *args: None),
                )
            ),  # type: ignore[arg-type]
            subscription,
        )
        callback = callbacks[1]

        async def deliver(result: Any) -> list[Any]:
            callback(result)
            return handler.readings(await handler.events.take(items))

    else:  # the checkout before: asyncua's callback into the agent's queue
        handler.attach(subscription)

        async def deliver(result: Any) -> list[Any]:
            await subscription.publish_callback(result)
            events = handler.events
            batch = [events.get_nowait() for _ in range(events.qsize())]
            return handler.readings(batch)

    # offer() only: nothing is written, the folder is never made
    history = HistoryRecorder(Path("history-not-written"), History())
    encoded = [publish_response_bytes(items, flip) for flip in (False, True)]
    stages: dict[str, list[float]] = {"decode": [], "deliver": [], "history": []}

    async def run() -> None:
        for number in range(repeats + 1):
            started = time.process_time()
            response = decode(encoded[number % 2])
            decoded = time.process_time()
            readings = await deliver(response.Parameters)
            delivered = time.process_time()
            history.offer(readings, number * 1_000_000_000)
            offered = time.process_time()
            history._buffer = []
            assert len(readings) == items
            if number:  # the first fills the history's last values
                stages["decode"].append(decoded - started)
                stages["deliver"].append(delivered - decoded)
                stages["history"].append(offered - delivered)

    asyncio.run(run())
    return stages


def run_tree(tree: Path, items: int, repeats: int) -> dict[str, list[float]]:
    output = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(items), str(repeats)],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, list[float]] = json.loads(output.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--other-tree", type=Path, help="also this checkout, alternating")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--items", type=int, default=ITEMS)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child)))
        return 0
    trees = [("this", REPO)] + ([("other", args.other_tree.resolve())] if args.other_tree else [])
    print(f"µs of CPU per notification, {args.items:,} items a response (best / median):")
    for number in range(args.rounds):
        order = trees if number % 2 == 0 else trees[::-1]
        for name, tree in order:
            stages = run_tree(tree, args.items, args.repeats)
            parts = [
                f"{stage} {min(times) / args.items * 1e6:.2f} / "
                f"{statistics.median(times) / args.items * 1e6:.2f}"
                for stage, times in stages.items()
            ]
            agent = [d + h for d, h in zip(stages["deliver"], stages["history"], strict=True)]
            print(
                f"  round {number + 1} {name:5s}: " + ", ".join(parts) + f"; agent's own "
                f"{min(agent) / args.items * 1e6:.2f} / "
                f"{statistics.median(agent) / args.items * 1e6:.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
