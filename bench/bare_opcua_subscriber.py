"""The floor of OPC UA subscribe mode: asyncua alone, subscribing the same items the agent
does (same parameters: publishing = sampling interval, queue size 1, iterator mode) and
throwing every notification away. Prints "subscribed N" when its items are in, then runs
until terminated (SIGTERM), and prints how many notifications it received;
``bench/opcua_subscribe.py`` measures its CPU.

``--decode-only``: the session hands each decoded publish response to a callback that only
counts its items (what the agent's subscription does before its own work, since it takes
the responses from the session itself): asyncua's publish loop and decoding, without its
iterator mode's event objects and queue.

    .venv/bin/python bench/bare_opcua_subscriber.py ENDPOINT ITEMS [--sampling-ms 1000]
        [--decode-only]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time

from asyncua import Client, ua
from asyncua.ua.attribute_ids import AttributeIds

PER_REQUEST = 1000  # monitored items created per request


def item(handle: int, node: str, sampling_ms: float) -> ua.MonitoredItemCreateRequest:
    request = ua.MonitoredItemCreateRequest()
    request.ItemToMonitor = ua.ReadValueId()
    request.ItemToMonitor.NodeId = ua.NodeId.from_string(node)
    request.ItemToMonitor.AttributeId = AttributeIds.Value
    request.MonitoringMode = ua.MonitoringMode.Reporting
    params = ua.MonitoringParameters()
    params.ClientHandle = handle
    params.SamplingInterval = sampling_ms
    params.QueueSize = 1
    params.DiscardOldest = True
    request.RequestedParameters = params
    return request


async def run(endpoint: str, items: int, sampling_ms: float, decode_only: bool) -> None:
    # The agent's client settings (sources/opcua/source.py): no reconnect, a lenient watchdog.
    client = Client(endpoint, timeout=10, watchdog_intervall=20, auto_reconnect=False)
    client.session_timeout = 120_000
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    received = 0
    async with client:
        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = sampling_ms
        params.RequestedMaxKeepAliveCount = 10
        params.RequestedLifetimeCount = 10_000
        params.MaxNotificationsPerPublish = 0
        params.PublishingEnabled = True
        subscription = await client.create_subscription(params, None, queue_maxsize=4 * items)
        requests = [item(h, f"ns=2;s=Bench.N{h - 1:05d}", sampling_ms) for h in range(1, items + 1)]
        for start in range(0, items, PER_REQUEST):
            await subscription.create_monitored_items(requests[start : start + PER_REQUEST])
        print(f"subscribed {items}", flush=True)
        started = time.monotonic()

        def published(result: ua.PublishResult) -> None:
            nonlocal received
            message = result.NotificationMessage
            if message.NotificationData is None:
                return
            # What asyncua's own callback keeps: its stale-subscription watchdog reads it
            # (without it the subscription is recreated every few seconds).
            subscription.last_publish_at = time.monotonic()
            subscription.last_sequence_number = int(message.SequenceNumber)
            for notification in message.NotificationData:
                if isinstance(notification, ua.DataChangeNotification):
                    received += len(notification.MonitoredItems)

        try:
            if decode_only:  # as the agent does: the session's callback swapped
                client.uaclient._subscription_callbacks[subscription.subscription_id] = published
                await asyncio.Event().wait()  # until SIGTERM
            async for _event in subscription:  # the no-op handler
                received += 1
        finally:
            rate = received / (time.monotonic() - started)
            print(f"received {received} ({rate:.0f}/s)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("endpoint")
    parser.add_argument("items", type=int)
    parser.add_argument("--sampling-ms", type=float, default=1000.0)
    parser.add_argument("--decode-only", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    try:
        asyncio.run(run(args.endpoint, args.items, args.sampling_ms, args.decode_only))
    except asyncio.CancelledError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
