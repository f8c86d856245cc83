"""The certificate and key files a secure OPC UA connection names: paths only.

Imports neither asyncua nor cryptography (≈ 48 MiB together): the running agent watches
these files for changes on every site, a Modbus-only one included.
"""

from __future__ import annotations

from pathlib import Path

from edge_agent.config.models import OpcUa, SecurityPolicy


def security_files(config: OpcUa, base_dir: Path) -> list[Path]:
    """The certificate and key files a secure connection loads (none for policy None)."""
    security = config.security
    if security.policy is SecurityPolicy.NONE:
        return []
    names = (security.certificate, security.private_key, security.server_certificate)
    return [_path(name, base_dir) for name in names if name]


def _path(reference: str, base_dir: Path) -> Path:
    path = Path(reference)
    return path if path.is_absolute() else base_dir / path
