"""`edge-agent certificate SITE CONNECTION [--renew] [--days N] [--server [--trust SHA256]]`.

Without ``--server``: make the client certificate and key the OPC UA connection's
``security.certificate`` / ``private_key`` name (never overwriting; ``--renew`` keeps the
old pair beside the new one) and say how to get it trusted.

With ``--server``: show what the server offers (endpoints, user token types) and its
certificate, and write nothing. ``--trust SHA256`` then writes that certificate to
``server_certificate``, only when its fingerprint is the one given: trust is an explicit
act, never taken on first use.

Exit 0 on success, 1 when the server cannot be asked or the fingerprint does not match,
2 when the site file or the command line cannot be used.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from pathlib import Path

from edge_agent.config.models import OpcUa, SiteConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("site", type=Path, help="the site file (YAML)")
    parser.add_argument("connection", help="the OPC UA connection's name in the site file")
    parser.add_argument(
        "--renew",
        action="store_true",
        help="make a new pair even if one exists (the old files are kept beside it)",
    )
    parser.add_argument(
        "--days", type=int, default=730, help="validity of a new certificate (default 730)"
    )
    parser.add_argument(
        "--server",
        action="store_true",
        help="show the server's endpoints and certificate instead (writes nothing)",
    )
    parser.add_argument(
        "--trust",
        metavar="SHA256",
        help="with --server: write the server's certificate to server_certificate if its "
        "SHA-256 fingerprint is this one (hex; colons and case do not matter)",
    )


def run(args: argparse.Namespace) -> int:
    if args.trust is not None and not args.server:
        return _usage("--trust goes with --server")
    if args.days < 1:
        return _usage("--days must be at least 1")
    now = dt.datetime.now(dt.UTC)
    try:
        now + dt.timedelta(days=args.days)
    except OverflowError:
        # Also what a clock gone to the year 9999 gives: show it.
        return _usage(
            f"--days {args.days} from {now:%Y-%m-%d} (this machine's clock) ends after 9999"
        )
    config = _load(args.site)
    if config is None:
        return 2
    connection = config.connections.get(args.connection)
    if not isinstance(connection, OpcUa):
        names = sorted(n for n, c in config.connections.items() if isinstance(c, OpcUa))
        return _usage(
            f"{args.site} has no OPC UA connection {args.connection!r} "
            f"(its OPC UA connections: {', '.join(names) or 'none'})"
        )
    base_dir = args.site.absolute().parent
    if args.server:
        return _server(args, connection, base_dir)
    return _make(args, connection, base_dir)


def _usage(message: str) -> int:
    print(f"edge-agent certificate: {message}", file=sys.stderr)
    return 2


def _load(path: Path) -> SiteConfig | None:
    from edge_agent.config.diagnostics import ConfigError
    from edge_agent.config.loader import load_site

    try:
        return load_site(path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        print(f"edge-agent certificate: {path} cannot be used; fix it first", file=sys.stderr)
        return None


def _file(name: str, base_dir: Path) -> Path:
    path = Path(name)
    return path if path.is_absolute() else base_dir / path


def _same_file(a: Path, b: Path) -> bool:
    # resolve(): the same file through a link or a ".." is still the same file.
    return a.resolve() == b.resolve()


def _make(args: argparse.Namespace, connection: OpcUa, base_dir: Path) -> int:
    from edge_agent.sources.opcua.client_pair import PairExists, make_pair

    security = connection.security
    if security.certificate is None or security.private_key is None:
        return _usage(
            f"connection {args.connection} names no certificate and private_key: add to its "
            "security: certificate: pki/client.pem, private_key: pki/client.key "
            "(with policy and mode)"
        )
    certificate_path = _file(security.certificate, base_dir)
    key_path = _file(security.private_key, base_dir)
    if _same_file(certificate_path, key_path):
        return _usage(
            f"connection {args.connection}: certificate and private_key name the same file "
            f"({certificate_path}); name two files, e.g. pki/client.pem and pki/client.key"
        )
    try:
        made = make_pair(
            certificate_path,
            key_path,
            security.application_uri,
            common_name=f"edge-agent {args.connection}",
            days=args.days,
            renew=args.renew,
        )
    except PairExists as exc:
        print(
            f"edge-agent certificate: {exc} exists already; nothing written "
            "(--renew makes a new pair and keeps the old one beside it)",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:
        print(f"edge-agent certificate: cannot write: {exc}", file=sys.stderr)
        return 1
    from cryptography.hazmat.primitives import serialization

    cert = made.certificate
    der = cert.public_bytes(serialization.Encoding.DER)
    print(f"certificate: {made.certificate_path}")
    print(f"private key: {made.key_path} (mode 0600)")
    for kept in made.kept:
        print(f"kept:        {kept}")
    _print_certificate(cert, der, application_uri=security.application_uri)
    print(
        "next: trust this certificate on the server. It usually appears in the server's "
        "rejected certificates after the first attempt to connect "
        f"(edge-agent read {args.site}); move it to the trusted ones there, compare its "
        "SHA-256 with the one above. Then fetch the server's certificate: "
        f"edge-agent certificate {args.site} {args.connection} --server"
    )
    return 0


def _print_certificate(cert: object, der: bytes, *, application_uri: str | None = None) -> None:
    from cryptography import x509

    from edge_agent.sources.opcua.certs import sha1_thumbprint, thumbprint

    assert isinstance(cert, x509.Certificate)
    print(f"subject:     {cert.subject.rfc4514_string()}")
    if application_uri is not None:
        print(f"application: {application_uri}")
    print(f"valid:       {_when(cert.not_valid_before_utc)} to {_when(cert.not_valid_after_utc)}")
    print(f"SHA-256:     {thumbprint(der)}")
    print(f"SHA-1:       {sha1_thumbprint(der)} (as OPC UA tools show it)")


def _when(moment: dt.datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _server(args: argparse.Namespace, connection: OpcUa, base_dir: Path) -> int:
    from cryptography import x509

    from edge_agent.sources.opcua.certs import load_certificate_der, normalize_fingerprint
    from edge_agent.sources.opcua.certs import thumbprint as sha256_of
    from edge_agent.sources.opcua.endpoints import fetch_offers
    from edge_agent.sources.opcua.errors import OpcUaSecurityError

    wanted: str | None = None
    security = connection.security
    if args.trust is not None:
        try:
            wanted = normalize_fingerprint(args.trust)
        except ValueError as exc:
            return _usage(str(exc))
        ours = [name for name in (security.certificate, security.private_key) if name]
        pin = security.server_certificate
        if pin and any(_same_file(_file(pin, base_dir), _file(n, base_dir)) for n in ours):
            return _usage(
                f"connection {args.connection}: server_certificate names the same file as our "
                f"certificate or key ({pin}); name its own file, e.g. pki/server.der"
            )
    timeout_s = connection.timeout / 1e9
    try:
        offers = asyncio.run(
            asyncio.wait_for(fetch_offers(connection.endpoint, timeout_s), timeout_s * 3)
        )
    except Exception as exc:  # any failure to ask is one line for the installer
        why = (
            f"no answer within {timeout_s:g} s (the connection's timeout)"
            if isinstance(exc, TimeoutError)
            else f"{type(exc).__name__}: {exc}".rstrip(": ")
        )
        print(
            f"edge-agent certificate: cannot get the endpoints of {connection.endpoint}: {why}",
            file=sys.stderr,
        )
        return 1
    print(f"server {connection.endpoint} offers:")
    for offer in offers:
        print(f"  {offer.describe()}")
    pinned_name = connection.security.server_certificate
    pinned_path = _file(pinned_name, base_dir) if pinned_name else None
    pinned: str | None = None
    if pinned_path is not None and pinned_path.exists():
        try:
            pinned = sha256_of(load_certificate_der(pinned_path))
        except OpcUaSecurityError:
            pinned = None
    certificates = list(dict.fromkeys(o.certificate for o in offers if o.certificate))
    if not certificates:
        print("the server presents no certificate (it offers no secure endpoint)")
    for der in certificates:
        print("server certificate:")
        _print_certificate(x509.load_der_x509_certificate(der), der)
        fingerprint = sha256_of(der)
        if pinned_path is None:
            print("pinned:      no (the connection names no server_certificate)")
        elif pinned == fingerprint:
            print(f"pinned:      yes ({pinned_path})")
        elif pinned is not None:
            print(f"pinned:      no: {pinned_path} holds another certificate (SHA-256 {pinned})")
        else:
            print(f"pinned:      no ({pinned_path} does not exist yet)")
    if wanted is None:
        if certificates and pinned_path is None:
            print(
                "next: to use a secure endpoint, name the files in the connection's security: "
                "first (policy, mode, certificate, private_key, server_certificate; "
                "docs/opcua-security.md, step 1)"
            )
        elif certificates:
            print(
                "next: compare the SHA-256 with the one the server's administrator reads on "
                "the server, then pin it: edge-agent certificate "
                f"{args.site} {args.connection} --server --trust SHA256"
            )
        return 0
    return _trust(wanted, certificates, pinned_path)


def _trust(wanted: str, certificates: list[bytes], pinned_path: Path | None) -> int:
    from edge_agent.sources.opcua.certs import thumbprint as sha256_of

    matching = [der for der in certificates if sha256_of(der) == wanted]
    if not matching:
        print(
            f"edge-agent certificate: the server presents no certificate with SHA-256 {wanted}; "
            "nothing written",
            file=sys.stderr,
        )
        return 1
    if pinned_path is None:
        print(
            "edge-agent certificate: the connection names no security.server_certificate "
            "file to write; nothing written",
            file=sys.stderr,
        )
        return 2
    _write_trusted(pinned_path, matching[0])
    print(f"trusted: wrote the server certificate to {pinned_path}")
    return 0


def _write_trusted(path: Path, der: bytes) -> None:
    """Write the pinned certificate (PEM, or DER for a ``.der`` name) by a rename; a
    different certificate there before is kept beside it."""
    from cryptography import x509

    from edge_agent.sources.opcua.certs import certificate_bytes
    from edge_agent.sources.opcua.client_pair import keep_aside, make_private_folder, write_file

    data = certificate_bytes(x509.load_der_x509_certificate(der), path)
    make_private_folder(path.parent)  # our key may go there later
    if path.exists() and path.read_bytes() != data:
        # A copy: the running agent always finds a certificate at ``path``.
        keep_aside(path, dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ"))
    write_file(path, data, 0o644)
