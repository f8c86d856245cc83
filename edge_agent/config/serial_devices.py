"""Checks of the serial lines a site file names, against this machine (``validate`` only).

Loading a site file does no I/O; ``validate`` is run by the installer on the gateway, so
it also looks at what an RTU connection needs there: pyserial installed, the device
present, and readable and writable by the user who runs the agent. Without these every
RTU sensor reads bad at run time while the file looked fine.
"""

from __future__ import annotations

import grp
import importlib.util
import os
import pwd
import stat
from collections.abc import Iterator
from typing import Final

from edge_agent.config.diagnostics import Diagnostic
from edge_agent.config.document import Document

# pyserial URL handlers (RTU over a TCP serial server, tests): no device file to check.
_URL_PREFIXES: Final = ("socket://", "rfc2217://", "loop://", "spy://", "alt://", "hwgrep://")


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _group_of(mode_gid: int) -> str:
    try:
        return grp.getgrgid(mode_gid).gr_name
    except KeyError:
        return str(mode_gid)


def device_problem(device: str) -> str | None:
    """Why this user cannot open serial ``device`` for reading and writing (or ``None``)."""
    try:
        info = os.stat(device)
    except FileNotFoundError:
        return (
            f"serial device {device} does not exist on this machine: check the adapter is "
            "plugged in (`ls /dev/serial/by-id/`) and the name is right"
        )
    except OSError as exc:
        return f"serial device {device} cannot be looked at: {exc.strerror}"
    if not stat.S_ISCHR(info.st_mode):
        return f"{device} is not a serial device (a character device such as /dev/ttyUSB0)"
    if not os.access(device, os.R_OK | os.W_OK):
        user = _user()
        group = _group_of(info.st_gid)
        return (
            f"serial device {device} is not readable and writable by user {user}: add the "
            f"user to its group ({group}, usually dialout): sudo usermod -aG {group} {user}, "
            "then log in again or restart the service"
        )
    return None


def pyserial_missing() -> bool:
    """True when pyserial (which pymodbus needs for RTU) cannot be imported."""
    return importlib.util.find_spec("serial") is None


def check_serial_devices(doc: Document) -> Iterator[Diagnostic]:
    """Each `modbus-rtu` connection's device exists and this user may use it; pyserial is
    installed. Problems of this machine, not of the file: warnings, except a missing
    pyserial, which breaks every RTU connection wherever the file runs."""
    connections = doc.get("connections")
    if not isinstance(connections, dict):
        return
    missing_reported = False
    for name, connection in connections.items():
        if not isinstance(connection, dict) or connection.get("protocol") != "modbus-rtu":
            continue
        if pyserial_missing() and not missing_reported:
            missing_reported = True
            yield doc.at(
                ("connections", name, "protocol"),
                "Modbus RTU needs pyserial, which is not installed: reinstall edge-agent "
                "(it depends on pymodbus[serial]) or pip install pyserial",
            )
        device = connection.get("device")
        if not isinstance(device, str) or device.startswith(_URL_PREFIXES):
            continue
        problem = device_problem(device)
        if problem is not None:
            yield doc.at(("connections", name, "device"), problem, "warning")
