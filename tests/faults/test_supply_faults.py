"""The vulnerability check's boundaries: the accept file (edited by people) and the advisory
source (the network). A bad accept file is a clear error (exit 2), never a silent pass; a
source that errors or answers a proxy's page is said (NOT CHECKED) and does not fail CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.supply.lockfile import LOCKS
from tests.supply.osv_emulator import Advisories, osv_server, vulncheck

AGENT_LOCK = LOCKS / "agent.txt"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[[accept]]\npackage = "diskcache"\nid = "CVE-2025-69872"\n', "needs exactly"),
        (
            '[[accept]]\npackage = "diskcache"\nid = "CVE-2025-69872"\nreason = "  "\n',
            "must be non-empty text",
        ),
        ('[[accept]]\npackage = "x"\nid = "y"\nreason = "z"\nuntil = 2027\n', "needs exactly"),
        ("[[accept]\n", "not valid TOML"),
        ('ignore = ["CVE-2025-69872"]\n', "only [[accept]] entries"),
        ("\xff\xfe", "not valid TOML"),
    ],
)
def test_a_bad_accept_file_is_a_clear_error(tmp_path: Path, text: str, says: str) -> None:
    accept = tmp_path / "accept.toml"
    accept.write_bytes(text.encode("latin-1"))
    done = vulncheck(AGENT_LOCK, "--accept", accept, "--osv-url", "http://127.0.0.1:9/x")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout.startswith("vulncheck: error: accept.toml: ")
    assert says in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize("behaviour", ["error", "html"])
def test_a_source_that_misbehaves_is_said_not_failed(behaviour: str) -> None:
    advisories = Advisories(behaviour=behaviour)
    with osv_server(advisories) as url:
        done = vulncheck(AGENT_LOCK, "--osv-url", url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"vulncheck: NOT CHECKED: the advisory source ({url})")
    assert advisories.queries >= 1
