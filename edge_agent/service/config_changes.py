"""What a reload changed, by name, for the reload's log line and ``/healthz``.

``rule added: p101-temp-high``, ``asset changed: p101``, ``connection removed: plc2``...
and ``credentials`` only when a secret or a certificate file really changed: the
fingerprint of their contents is compared, never logged (it is a hash of secrets).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from edge_agent.config.models import OpcUa, SiteConfig
from edge_agent.config.secrets import SecretError, resolve
from edge_agent.service.secret_scan import secret_references

# Certificate and key files are read whole for the fingerprint; none is near this.
_MAX_FILE_BYTES = 1 << 20


def _named(kind: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    changes = [f"{kind} added: {key}" for key in new if key not in old]
    changes += [f"{kind} removed: {key}" for key in old if key not in new]
    changes += [f"{kind} changed: {key}" for key in new if key in old and old[key] != new[key]]
    return changes


def rule_and_asset_changes(old: SiteConfig, new: SiteConfig) -> list[str]:
    """Rules (by id) and assets (by key) added, removed or changed."""
    return _named("rule", {r.id: r for r in old.rules}, {r.id: r for r in new.rules}) + _named(
        "asset", old.assets, new.assets
    )


def connection_changes(old: SiteConfig, new: SiteConfig, restarted: Iterable[str]) -> list[str]:
    """Connections added or removed, and the kept ones whose source was restarted (their
    settings or sensors changed)."""
    names = set(restarted)
    changes = [f"connection added: {n}" for n in new.connections if n not in old.connections]
    changes += [f"connection removed: {n}" for n in old.connections if n not in new.connections]
    changes += [
        f"connection changed: {n}"
        for n in sorted(names)
        if n in old.connections and n in new.connections
    ]
    return changes


def _credential_files(config: SiteConfig, base_dir: Path) -> list[Path]:
    from edge_agent.sources.opcua.files import security_files

    files: list[Path] = []
    for connection in config.connections.values():
        if isinstance(connection, OpcUa):
            files += security_files(connection, base_dir)
    mqtt = config.forwarding.mqtt if config.forwarding is not None else None
    if mqtt is not None and mqtt.tls is not None:
        # Only here: tls_files imports cryptography (≈ 14 MiB), which a site without TLS
        # files never needs.
        from edge_agent.config.tls_files import resolve_path

        names = (mqtt.tls.ca, mqtt.tls.certificate, mqtt.tls.private_key)
        files += [resolve_path(name, base_dir) for name in names if name]
    return files


def credentials_fingerprint(config: SiteConfig, base_dir: Path) -> str:
    """A hash of every secret the site file references and every certificate and key
    file it names, as they are now (unreadable ones count as their error)."""
    digest = hashlib.sha256()
    for reference in secret_references(config):
        digest.update(reference.encode() + b"\0")
        try:
            digest.update(resolve(reference, base_dir).reveal().encode())
        except SecretError:
            digest.update(b"\1unresolved")
        digest.update(b"\0")
    for path in _credential_files(config, base_dir):
        digest.update(str(path).encode() + b"\0")
        try:
            with path.open("rb") as handle:
                digest.update(handle.read(_MAX_FILE_BYTES))
        except OSError as exc:
            digest.update(f"\1{type(exc).__name__}".encode())
        digest.update(b"\0")
    return digest.hexdigest()
