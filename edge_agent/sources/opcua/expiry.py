"""How long the connection's certificates stay valid: ours and the pinned server's.

Read at every connection attempt (two small files), so a renewed certificate is seen at
the next attempt; a file that cannot be read is left out (the attempt itself says why).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from edge_agent.config.models import OpcUa, SecurityPolicy

log = logging.getLogger(__name__)

WARNING_DAYS = 30
"""A warning in the log and ``/readyz`` from this many days before a certificate expires."""


def certificate_files(config: OpcUa, base_dir: Path) -> dict[str, Path]:
    """``{"client": ..., "server": ...}``: the certificates a secure connection uses."""
    security = config.security
    if security.policy is SecurityPolicy.NONE:
        return {}
    named = {"client": security.certificate, "server": security.server_certificate}
    files: dict[str, Path] = {}
    for which, name in named.items():
        if name:
            path = Path(name)
            files[which] = path if path.is_absolute() else base_dir / path
    return files


def not_after(files: dict[str, Path]) -> dict[str, float]:
    """Each readable certificate's end of validity, as Unix seconds."""
    # Imported here: the service imports this module on every site, and cryptography
    # costs ≈ 14 MiB that a site without a secure OPC UA connection never needs.
    from cryptography import x509

    from edge_agent.sources.opcua.certs import load_certificate_der
    from edge_agent.sources.opcua.errors import OpcUaSecurityError

    ends: dict[str, float] = {}
    for which, path in files.items():
        try:
            der = load_certificate_der(path)
        except OpcUaSecurityError:
            continue
        ends[which] = x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()
    return ends


def expiry_warning(which: str, end_s: float, now_s: float) -> str | None:
    """What to say about a certificate that expires within :data:`WARNING_DAYS`."""
    left_s = end_s - now_s
    if left_s > WARNING_DAYS * 86_400:
        return None
    day = dt.datetime.fromtimestamp(end_s, dt.UTC).strftime("%Y-%m-%d")
    renew = (
        "renew it (edge-agent certificate SITE CONNECTION --renew) and trust the new one on "
        "the server"
        if which == "client"
        else "ask the server's administrator for its new certificate and pin it "
        "(edge-agent certificate SITE CONNECTION --server --trust SHA256)"
    )
    if left_s <= 0:
        return f"the {which} certificate expired on {day}: {renew}"
    return f"the {which} certificate expires on {day} (in {int(left_s // 86_400)} days): {renew}"
