"""The MQTT link's ``tls:`` section: the files it names and the client TLS context they load.

Each file is loaded on its own so that an error names the file to fix (ssl's own messages
do not); every failure is a :class:`~edge_agent.common.mqtt_errors.MqttConfigError`.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from edge_agent.common.mqtt_errors import MqttConfigError
from edge_agent.config.models import Tls


def _tls_path(name: str, base_dir: Path | None) -> str:
    candidate = Path(name)
    if not candidate.is_absolute() and base_dir is not None:
        candidate = base_dir / candidate
    return str(candidate)


def tls_files(tls: Tls, base_dir: Path | None = None) -> list[Path]:
    """The files the ``tls:`` section names (what certificate rotation watches)."""
    names = (tls.ca, tls.certificate, tls.private_key)
    return [Path(_tls_path(name, base_dir)) for name in names if name]


def tls_context(tls: Tls, base_dir: Path | None = None) -> ssl.SSLContext:
    """A client TLS context from the ``tls:`` section: CA (else the system's), optional
    client certificate and key. Relative paths are taken from ``base_dir``. Hostname
    verification stays on."""

    # Each file on its own: the error names the file to fix (ssl's own messages do not).
    ca = _tls_path(tls.ca, base_dir) if tls.ca else None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise MqttConfigError(f"cannot load the MQTT TLS CA file {ca}: {_why(exc)}") from exc
    if tls.certificate and tls.private_key:
        certificate = _tls_path(tls.certificate, base_dir)
        key = _tls_path(tls.private_key, base_dir)
        try:
            context.load_cert_chain(certificate, key)
        except (OSError, ssl.SSLError) as exc:
            raise MqttConfigError(
                f"cannot load the MQTT client certificate {certificate} with key {key}: {_why(exc)}"
            ) from exc
    return context


def _why(exc: OSError | ssl.SSLError) -> str:
    return exc.strerror or str(exc)
