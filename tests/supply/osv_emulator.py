"""A stand-in for the OSV advisory API (``POST /v1/query``) on loopback: the advisories it
knows, by package name, and ways to misbehave. Used to run scripts/vulncheck.py (and the
real pip-audit under it) end to end without the internet."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.supply.lockfile import REPO_ROOT

VULNCHECK = REPO_ROOT / "scripts" / "vulncheck.py"


@dataclass
class Advisories:
    by_package: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # "ok", "error" (HTTP 500 to everything) or "html" (a proxy's page instead of JSON).
    behaviour: str = "ok"
    queries: int = 0

    def add(self, package: str, vuln_id: str, aliases: list[str], fixed: str | None) -> None:
        events: list[dict[str, str]] = [{"introduced": "0"}]
        if fixed:
            events.append({"fixed": fixed})
        self.by_package.setdefault(package, []).append(
            {
                "id": vuln_id,
                "aliases": aliases,
                "summary": f"test advisory {vuln_id}",
                "affected": [
                    {
                        "package": {"name": package, "ecosystem": "PyPI"},
                        "ranges": [{"type": "ECOSYSTEM", "events": events}],
                    }
                ],
            }
        )


def _handler(advisories: Advisories) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            query = json.loads(self.rfile.read(min(length, 65536)))
            advisories.queries += 1
            if advisories.behaviour == "error":
                self._send(500, b"{}", "application/json")
            elif advisories.behaviour == "html":
                self._send(200, b"<html>Sign in to the network</html>", "text/html")
            else:
                vulns = advisories.by_package.get(query["package"]["name"], [])
                body = json.dumps({"vulns": vulns} if vulns else {}).encode()
                self._send(200, body, "application/json")

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextmanager
def osv_server(advisories: Advisories) -> Iterator[str]:
    """The query URL of a running emulator."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(advisories))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/query"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def vulncheck(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(VULNCHECK), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
