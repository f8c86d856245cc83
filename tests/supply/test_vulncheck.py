"""`make vulncheck` (scripts/vulncheck.py, the real pip-audit under it) against an OSV
stand-in on loopback: a finding fails, an accepted one passes with its reason, an
unreachable source is said and does not fail."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import free_port
from tests.supply.lockfile import LOCKS
from tests.supply.osv_emulator import Advisories, osv_server, vulncheck

AGENT_LOCK = LOCKS / "agent.txt"


def line_of(output: str, start: str) -> str:
    found = [line for line in output.splitlines() if line.startswith(start)]
    assert len(found) == 1, output
    return found[0]


def test_the_diskcache_advisory_is_accepted_with_its_reason() -> None:
    advisories = Advisories()
    advisories.add("diskcache", "GHSA-test-dc00-0001", ["CVE-2025-69872"], fixed=None)
    with osv_server(advisories) as url:
        done = vulncheck(AGENT_LOCK, "--osv-url", url)
    assert done.returncode == 0, done.stdout + done.stderr
    accepted = line_of(done.stdout, "vulncheck: accepted: diskcache 5.6.3 ")
    # The advisory's ids in pip-audit's order, then the reason from the accept file.
    assert {"CVE-2025-69872", "GHSA-test-dc00-0001"} <= set(accepted.replace(":", " ").split())
    assert ": No fixed release exists (diskcache 5.6.3 is the last)." in accepted
    assert "30 locked packages checked" in done.stdout
    assert "0 vulnerable, 1 accepted" in done.stdout
    assert advisories.queries == 30


def test_a_vulnerability_not_accepted_fails_and_names_the_fix() -> None:
    advisories = Advisories()
    advisories.add("diskcache", "GHSA-test-dc00-0001", ["CVE-2025-69872"], fixed=None)
    advisories.add("httpx", "PYSEC-TEST-1", ["CVE-2099-0001"], fixed="0.28.2")
    with osv_server(advisories) as url:
        done = vulncheck(AGENT_LOCK, "--osv-url", url)
    assert done.returncode == 1, done.stdout + done.stderr
    found = line_of(done.stdout, "vulncheck: VULNERABLE: httpx 0.28.1 ")
    assert {"PYSEC-TEST-1", "CVE-2099-0001"} <= set(found.split())
    assert found.endswith("(fixed in: 0.28.2)")
    assert "1 vulnerable, 1 accepted" in done.stdout


def test_an_acceptance_for_another_package_does_not_hide_a_finding(tmp_path: Path) -> None:
    accept = tmp_path / "accept.toml"
    accept.write_text('[[accept]]\npackage = "h11"\nid = "CVE-2099-0002"\nreason = "not ours"\n')
    advisories = Advisories()
    advisories.add("httpx", "PYSEC-TEST-2", ["CVE-2099-0002"], fixed=None)
    with osv_server(advisories) as url:
        done = vulncheck(AGENT_LOCK, "--osv-url", url, "--accept", accept)
    assert done.returncode == 1, done.stdout
    assert "(fixed in: no fixed release)" in done.stdout
    assert "accepted h11 CVE-2099-0002 was not found: remove it?" in done.stdout


def test_an_unreachable_source_is_said_and_does_not_fail() -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1/query"
    done = vulncheck(AGENT_LOCK, "--osv-url", closed)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"vulncheck: NOT CHECKED: the advisory source ({closed})")
