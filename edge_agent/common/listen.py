"""Listen addresses (``health.listen``, ``webhooks.listen``): ``HOST:PORT``, an IPv6 host in
brackets. One parser for the agent's and the hub's files, so that an address one accepts
the other accepts too."""

from __future__ import annotations

from typing import Final

MAX_PORT: Final = 65535


def parse_listen(listen: str) -> tuple[str, int]:
    """``127.0.0.1:9108`` or ``[::1]:9108`` → (host, port); ValueError otherwise.

    The host is required: ``:9108`` or ``[]:9108`` would bind every interface, which must
    be written out (``0.0.0.0:9108``), not implied. Port 0 (the system picks one) is
    accepted here; a file that must name a port checks for it.
    """
    host, sep, port_text = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not (port_text.isascii() and port_text.isdigit()):
        raise ValueError(f"{listen!r} is not HOST:PORT (e.g. 127.0.0.1:9109 or [::1]:9109)")
    port = int(port_text)
    if port > MAX_PORT:
        raise ValueError(f"{listen!r}: port {port} is out of range")
    return host, port
