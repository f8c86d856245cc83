"""Checks of the certificate, key and secret files a site or hub file names (``validate`` only).

Loading a file does no I/O; ``validate`` runs on the gateway as the agent's user, so it also
opens what the connections will open at run time: the MQTT ``tls`` CA, client certificate
and key, the OPC UA ``security`` certificate, key and trusted server certificate, and every
``file:`` secret. A file that is missing, unreadable or does not parse, and a key that does
not belong to its certificate, are errors (the connection can never work). A certificate
that has expired or expires within :data:`EXPIRY_WARNING_DAYS` is a warning: it is renewed
in place, and the agent picks the new one up (see docs/operations.md).
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from edge_agent.config.diagnostics import ConfigPath, Diagnostic
from edge_agent.config.document import Document
from edge_agent.config.models import SecurityPolicy
from edge_agent.errors import EdgeAgentError

EXPIRY_WARNING_DAYS: Final = 30
MAX_FILE_BYTES: Final = 1_000_000
"""Larger than any certificate chain or key: a bigger file is the wrong file."""
SECRET_KEYS: Final = frozenset({"password", "api_key", "dsn", "secret"})
"""The keys that hold secret references (``SecretRef``) in site and hub files."""
SECURE_POLICIES: Final = frozenset(p.value for p in SecurityPolicy if p is not SecurityPolicy.NONE)


class FileProblem(EdgeAgentError):
    """A file that cannot be used; the message names it and says why."""


class FileMissing(FileProblem):
    """The file does not exist (yet)."""


@dataclass(frozen=True)
class CertificateFiles:
    """What one connection names: where each file is written in the document."""

    certificate: ConfigPath | None = None
    private_key: ConfigPath | None = None
    trusted: tuple[ConfigPath, ...] = ()
    """CA bundles or the one trusted server certificate."""
    der_allowed: bool = False
    """OPC UA takes DER as well as PEM; OpenSSL (MQTT) only PEM."""
    opcua_connection: str | None = None
    """The OPC UA connection's name: ``edge-agent certificate`` makes or fetches its files."""


def resolve_path(name: str, base_dir: Path) -> Path:
    """A file named in the config: relative paths are taken from the file's folder."""
    path = Path(name)
    return path if path.is_absolute() else base_dir / path


def read_bounded(path: Path) -> bytes:
    """The bytes of a small file this user must be able to read."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise FileMissing(f"{path} does not exist") from None
    except PermissionError:
        raise FileProblem(f"{path} is not readable by user {_user()}") from None
    except IsADirectoryError:
        raise FileProblem(f"{path} is a directory, not a file") from None
    except OSError as exc:
        raise FileProblem(f"{path} cannot be read: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise FileProblem(f"{path} is larger than {MAX_FILE_BYTES} bytes: not a certificate")
    return data


def load_certificates(path: Path, der_allowed: bool) -> list[x509.Certificate]:
    """Every certificate of a PEM file (a chain or a CA bundle), or the one of a DER file."""
    data = read_bounded(path)
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        if der_allowed:
            return [x509.load_der_x509_certificate(data)]
    except ValueError:
        pass
    kind = "a PEM or DER" if der_allowed else "a PEM"
    raise FileProblem(f"{path} is not {kind} X.509 certificate")


def load_private_key(path: Path, der_allowed: bool) -> PrivateKeyTypes:
    """An unencrypted private key (the agent starts unattended: no passphrase)."""
    data = read_bounded(path)
    try:
        if b"-----BEGIN" in data:
            return serialization.load_pem_private_key(data, password=None)
        if der_allowed:
            return serialization.load_der_private_key(data, password=None)
    except TypeError:
        raise FileProblem(
            f"{path} is encrypted with a passphrase; the agent needs an unencrypted key "
            "(readable only by its user)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        pass
    kind = "a PEM or DER" if der_allowed else "a PEM"
    raise FileProblem(f"{path} is not {kind} private key")


def _public_bytes(key: object) -> bytes:
    public = getattr(key, "public_key", None)
    if public is None:
        return b""
    value = public()
    encoded: bytes = value.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return encoded


def key_matches(certificate: x509.Certificate, key: PrivateKeyTypes) -> bool:
    """True when ``key`` is the private half of ``certificate``'s public key."""
    return _public_bytes(certificate) == _public_bytes(key)


def validity_problem(
    certificate: x509.Certificate, path: Path, now: dt.datetime | None = None
) -> str | None:
    """Why ``certificate`` needs renewing soon (expired, expiring, not yet valid), or None."""
    now = now or dt.datetime.now(dt.UTC)
    not_after = certificate.not_valid_after_utc
    subject = certificate.subject.rfc4514_string() or "(no subject)"
    if not_after <= now:
        return f"certificate {subject} in {path} expired on {not_after:%Y-%m-%d}: renew it"
    left = not_after - now
    if left <= dt.timedelta(days=EXPIRY_WARNING_DAYS):
        return (
            f"certificate {subject} in {path} expires on {not_after:%Y-%m-%d} "
            f"(in {left.days} days): renew it"
        )
    if certificate.not_valid_before_utc > now:
        return (
            f"certificate {subject} in {path} is not valid before "
            f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC (check this machine's clock)"
        )
    return None


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def connection_files(doc: Document) -> Iterator[CertificateFiles]:
    """The certificate files every connection of a site or hub document names."""
    for tls in (("forwarding", "mqtt", "tls"), ("broker", "tls")):
        section = doc.get(*tls)
        if isinstance(section, dict):
            yield CertificateFiles(
                certificate=(*tls, "certificate") if "certificate" in section else None,
                private_key=(*tls, "private_key") if "private_key" in section else None,
                trusted=((*tls, "ca"),) if "ca" in section else (),
            )
    connections = doc.get("connections")
    for name, connection in connections.items() if isinstance(connections, dict) else ():
        security = connection.get("security") if isinstance(connection, dict) else None
        # A policy the model refuses is reported there; its files would only add noise.
        if not isinstance(security, dict) or security.get("policy") not in SECURE_POLICIES:
            continue
        prefix = ("connections", name, "security")
        yield CertificateFiles(
            certificate=(*prefix, "certificate") if "certificate" in security else None,
            private_key=(*prefix, "private_key") if "private_key" in security else None,
            trusted=((*prefix, "server_certificate"),) if "server_certificate" in security else (),
            der_allowed=True,
            opcua_connection=str(name),
        )


def _secret_files(value: object, path: ConfigPath) -> Iterator[tuple[ConfigPath, str]]:
    """Every ``file:`` reference under a secret's key in the document (a work order text
    may start with "file:" too)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _secret_files(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _secret_files(item, (*path, index))
    elif (
        path
        and path[-1] in SECRET_KEYS
        and isinstance(value, str)
        and value.startswith("file:")
        and len(value) > len("file:")
    ):
        yield path, value[len("file:") :]


def check_tls_files(doc: Document) -> Iterator[Diagnostic]:
    """Each certificate, key and secret file exists, is readable by this user and parses;
    a client key belongs to its certificate; certificates are valid for 30 more days."""
    for files in connection_files(doc):
        yield from _check_connection(doc, files)
    for path, name in _secret_files(doc.data, ()):
        secret_path = resolve_path(name, doc.base_dir)
        try:
            data = read_bounded(secret_path)
        except FileProblem as exc:
            yield doc.at(path, f"secret file {exc}")
            continue
        if not data.strip():  # what the service would send is an empty key or password
            yield doc.at(path, f"secret file {secret_path} is empty")


def _name_at(doc: Document, path: ConfigPath) -> Path | None:
    name = doc.get(*path)
    return resolve_path(name, doc.base_dir) if isinstance(name, str) and name else None


def _problem(doc: Document, files: CertificateFiles, exc: FileProblem, trusted: bool) -> str:
    """The problem, and for an OPC UA file not made yet the command that makes it."""
    if not isinstance(exc, FileMissing) or files.opcua_connection is None:
        return str(exc)
    command = f"edge-agent certificate {doc.main_file} {files.opcua_connection}"
    if trusted:
        return f"{exc}: fetch and pin the server's with {command} --server --trust SHA256"
    return f"{exc}: make it with {command}"


def _check_connection(doc: Document, files: CertificateFiles) -> Iterator[Diagnostic]:
    for trusted_path in files.trusted:
        path = _name_at(doc, trusted_path)
        if path is None:
            continue
        try:
            certificates = load_certificates(path, files.der_allowed)
        except FileProblem as exc:
            yield doc.at(trusted_path, _problem(doc, files, exc, trusted=True))
            continue
        for certificate in certificates:
            problem = validity_problem(certificate, path)
            if problem is not None:
                yield doc.at(trusted_path, problem, "warning")
    certificate_path = _name_at(doc, files.certificate) if files.certificate else None
    key_path = _name_at(doc, files.private_key) if files.private_key else None
    leaf: x509.Certificate | None = None
    if files.certificate is not None and certificate_path is not None:
        try:
            leaf = load_certificates(certificate_path, files.der_allowed)[0]
        except FileProblem as exc:
            yield doc.at(files.certificate, _problem(doc, files, exc, trusted=False))
        else:
            problem = validity_problem(leaf, certificate_path)
            if problem is not None:
                yield doc.at(files.certificate, problem, "warning")
    if files.private_key is None or key_path is None:
        return
    try:
        key = load_private_key(key_path, files.der_allowed)
    except FileProblem as exc:
        yield doc.at(files.private_key, _problem(doc, files, exc, trusted=False))
        return
    if leaf is not None and not key_matches(leaf, key):
        yield doc.at(
            files.private_key,
            f"{key_path} is not the private key of the certificate {certificate_path}: "
            "install the key and certificate of the same pair",
        )
    try:
        mode = key_path.stat().st_mode
    except OSError:  # read a moment ago; gone now is for the next run to say
        return
    if mode & stat.S_IROTH:
        yield doc.at(
            files.private_key,
            f"{key_path} is readable by every user on this machine: chmod 600 it",
            "warning",
        )
