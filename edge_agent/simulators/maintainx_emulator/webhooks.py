"""Signed webhook delivery, as MaintainX does it.

Header ``x-maintainx-webhook-body-signature: t=<unix seconds>,v1=<hex>`` where hex is
HMAC-SHA256(secret, f"{t}.{raw body}"). Deliveries go only to loopback addresses: the
emulator is a test double and must never call out of the machine.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from edge_agent.simulators.maintainx_emulator.store import WebhookEvent

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-maintainx-webhook-body-signature"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class WebhookDelivery:
    """One delivery attempt's outcome (``status`` None: no HTTP answer)."""

    subscription_id: int
    url: str
    payload: dict[str, Any]
    status: int | None
    error: str | None = None
    attempt: int = 1


class WebhookSender:
    """Delivers webhook events on a background thread, with a few retries."""

    def __init__(self, stopping: threading.Event, attempts: int = 3, timeout_s: float = 5.0):
        self._queue: queue.Queue[WebhookEvent | None] = queue.Queue()
        self._stopping = stopping
        self.attempts = attempts
        self.timeout_s = timeout_s
        self.deliveries: list[WebhookDelivery] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="mx-emulator-webhooks", daemon=True)

    def start(self) -> None:
        """Start delivering; after :meth:`stop` a new thread takes over the queue (a thread
        starts only once), so an emulator can be stopped and started again."""
        if self._thread.is_alive():
            return
        if self._thread.ident is not None:
            self._drop_stop_markers()
            self._thread = threading.Thread(
                target=self._run, name="mx-emulator-webhooks", daemon=True
            )
        self._thread.start()

    def _drop_stop_markers(self) -> None:
        # A thread that ended on ``stopping`` left stop()'s marker in the queue; the new
        # thread would end on it at once. Events queued meanwhile are kept, in order.
        kept: list[WebhookEvent] = []
        while True:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                break
            if event is not None:
                kept.append(event)
        for event in kept:
            self._queue.put(event)

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def submit(self, event: WebhookEvent) -> None:
        self._queue.put(event)

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            for attempt in range(1, self.attempts + 1):
                delivery = self._deliver(event, attempt)
                with self._lock:
                    self.deliveries.append(delivery)
                if delivery.status is not None and 200 <= delivery.status < 300:
                    break
                if self._stopping.wait(0.2 * attempt):
                    return

    def _deliver(self, event: WebhookEvent, attempt: int) -> WebhookDelivery:
        subscription = event.subscription
        url = str(subscription["url"])
        record = WebhookDelivery(int(subscription["id"]), url, event.payload, None, None, attempt)
        if not is_loopback_url(url):
            record.error = "refused: the emulator only delivers to loopback addresses"
            return record
        body = json.dumps(event.payload, separators=(",", ":")).encode()
        request = urllib.request.Request(  # noqa: S310 - http(s) to loopback only, checked above
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(str(subscription["secret"]), body, int(time.time())),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                record.status = int(response.status)
        except urllib.error.HTTPError as exc:
            record.status = exc.code
            exc.close()
        except (urllib.error.URLError, OSError) as exc:
            record.error = str(exc)
        return record
