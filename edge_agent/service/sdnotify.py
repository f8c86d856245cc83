"""systemd's notify protocol (``Type=notify``), without a dependency.

The protocol is one datagram per state change, ``KEY=VALUE`` lines, sent to the
``AF_UNIX`` socket named in ``NOTIFY_SOCKET`` (a leading ``@`` means the abstract
namespace). Outside systemd the variable is unset and every call does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

from edge_agent.redaction import redact

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 0.5


class SystemdNotifier:
    """Sends ``READY=1``, ``RELOADING=1``, ``STOPPING=1``, ``WATCHDOG=1`` and ``STATUS=``."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        self._address: str | bytes | None = None
        if raw.startswith("@"):
            self._address = b"\0" + raw[1:].encode()
        elif raw.startswith("/"):
            self._address = raw
        self._watchdog_usec = _watchdog_usec(env)

    @property
    def enabled(self) -> bool:
        """True when systemd (or a test) listens on ``NOTIFY_SOCKET``."""
        return self._address is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """How often to send ``WATCHDOG=1``: half of ``WATCHDOG_USEC``, or None if unset."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def notify(self, *lines: str) -> bool:
        """Send one datagram; False (logged, never raised) if it could not be sent."""
        if self._address is None:
            return False
        payload = redact("\n".join(lines)).encode()  # STATUS= shows in systemctl status
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # A full receive queue (systemd busy) would drop a non-blocking send; wait a
                # little instead, bounded so the event loop never stalls for long.
                sock.settimeout(SEND_TIMEOUT_S)
                sock.sendto(payload, self._address)
        except OSError as exc:
            log.warning("sd_notify failed.", extra={"error": str(exc)})
            return False
        return True

    def ready(self, status: str = "running") -> bool:
        return self.notify("READY=1", f"STATUS={status}")

    def reloading(self) -> bool:
        # systemd ≥ 253 wants MONOTONIC_USEC with RELOADING=1 (Type=notify-reload).
        monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1", "STATUS=stopping")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    async def watchdog_loop(self, alive: Callable[[], bool] = lambda: True) -> None:
        """Ping the watchdog at half its interval until cancelled, while ``alive()``. It
        runs on the event loop on purpose: a loop that stops turning stops the pings, and
        systemd restarts us; so does a task that ended (``alive`` turns false for good).
        Without a watchdog it waits until cancelled, like any supervised task."""
        interval = self.watchdog_interval_s
        if not self.enabled or interval is None:
            await asyncio.Event().wait()
            return
        while True:
            if alive():
                self.watchdog()
            await asyncio.sleep(interval)


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    raw = env.get("WATCHDOG_USEC")
    if not raw:
        return None
    pid = env.get("WATCHDOG_PID")
    # WATCHDOG_PID names the process the watchdog is meant for; a child inherits the
    # variables but is not the one systemd watches.
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    try:
        usec = int(raw)
    except ValueError:
        return None
    return usec if usec > 0 else None
