"""The client certificate and key a connection names, made on this machine.

Never overwrites: a pair that exists is left alone unless renewing, and renewing keeps the
old files beside the new ones (``client.pem.old-20261204T164500Z``). New files are
written to a temporary name and renamed into place, the key first, so the certificate
watch of a running agent never loads a certificate without its key. Folders this creates
are 0700 and the key is 0600: the key is the agent's identity.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from edge_agent.errors import EdgeAgentError
from edge_agent.sources.opcua.certs import (
    build_certificate,
    certificate_bytes,
    key_pem,
    new_key,
)

DEFAULT_DAYS = 730


class PairExists(EdgeAgentError):
    """The certificate or key is there already (the message names it)."""


@dataclass(frozen=True)
class MadePair:
    certificate: x509.Certificate
    certificate_path: Path
    key_path: Path
    kept: tuple[Path, ...]
    """The old files renamed aside by a renewal."""


def host_name() -> str:
    """This machine's name, as a DNS name for the subjectAltName."""
    return socket.gethostname() or "localhost"


def make_pair(
    certificate_path: Path,
    key_path: Path,
    application_uri: str,
    *,
    common_name: str,
    days: int = DEFAULT_DAYS,
    renew: bool = False,
    now: dt.datetime | None = None,
) -> MadePair:
    """Make an RSA 2048 key and a self-signed certificate for ``application_uri``."""
    # A dangling symlink counts: replacing it would undo where the installer points it.
    existing = [p for p in (certificate_path, key_path) if p.exists() or p.is_symlink()]
    if existing and not renew:
        raise PairExists(", ".join(str(path) for path in existing))
    now = now or dt.datetime.now(dt.UTC)
    key = new_key()
    certificate = build_certificate(
        key,
        application_uri,
        common_name=common_name,
        hostnames=(host_name(),),
        days=days,
        server_auth=False,
        now=now,
    )
    for folder in {certificate_path.parent, key_path.parent}:
        make_private_folder(folder)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    # An old key is still a key the server may trust: its copy is ours only.
    kept = {p: keep_aside(p, stamp, 0o600 if p == key_path else None) for p in existing}
    write_file(key_path, key_pem(key), 0o600)
    try:
        write_file(certificate_path, certificate_bytes(certificate, certificate_path), 0o644)
    except BaseException:
        # A new key beside the old certificate is no pair, and a lone new key would be
        # refused as existing next time: put back what was there.
        if key_path in kept:
            write_file(key_path, kept[key_path].read_bytes(), 0o600)
        else:
            key_path.unlink(missing_ok=True)
        raise
    return MadePair(certificate, certificate_path, key_path, tuple(kept.values()))


def make_private_folder(folder: Path) -> None:
    """Create ``folder`` and its missing parents 0700; folders that exist keep their mode."""
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        path.mkdir(mode=0o700)
        os.chmod(path, 0o700)  # mkdir's mode passes through the umask


def keep_aside(path: Path, stamp: str, mode: int | None = None) -> Path:
    """Copy ``path`` to ``NAME.old-STAMP`` (its own mode unless ``mode``), a free name."""
    # A copy, not a rename: the running agent keeps a loadable pair until both new files
    # are in place.
    data = path.read_bytes()
    mode = path.stat().st_mode & 0o777 if mode is None else mode
    aside = path.with_name(f"{path.name}.old-{stamp}")
    for counter in range(1, 1000):
        try:
            _write_new(aside, data, mode)
            return aside
        except FileExistsError:  # two renewals within a second, or a link there
            aside = path.with_name(f"{path.name}.old-{stamp}-{counter}")
    raise FileExistsError(f"{aside} and 998 others before it exist")


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` (never an existing file, nor through a symlink) 0600, and give it
    ``mode`` once written: a key is never readable by others, even for a moment."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(path, mode)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Put ``data`` at ``path`` by a rename, so a reader sees the old or the new file."""
    temporary = path.with_name(f".{path.name}.new")
    # A leftover of an interrupted run, or a link planted there: remove it, never follow it.
    temporary.unlink(missing_ok=True)
    _write_new(temporary, data, mode)
    try:
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
