"""The lock files (requirements/*.txt) hold what pyproject.toml asks for: a dependency
added, removed or re-bounded in pyproject.toml without `make lock` fails here, before an
image build or an install does. No network: both files are only parsed."""

from __future__ import annotations

import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.supply.lockfile import LOCKS, REPO_ROOT, read_lock

PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = [Requirement(r) for r in PROJECT["dependencies"]]
POSTGRES = [Requirement(r) for r in PROJECT["optional-dependencies"]["postgres"]]
OURS = "edge-agent (pyproject.toml)"

SETS = {"agent.txt": RUNTIME, "hub.txt": RUNTIME + POSTGRES}


@pytest.mark.parametrize("lock", sorted(SETS))
def test_every_declared_dependency_is_pinned_within_its_bounds(lock: str) -> None:
    pins = read_lock(LOCKS / lock)
    for requirement in SETS[lock]:
        pin = pins.get(canonicalize_name(requirement.name))
        assert pin is not None, f"{requirement} is not in requirements/{lock}: run make lock"
        assert requirement.specifier.contains(pin.version, prereleases=True), (
            f"requirements/{lock} pins {pin.name}=={pin.version}, outside {requirement}: "
            "run make lock"
        )


@pytest.mark.parametrize("lock", sorted(SETS))
def test_nothing_is_pinned_for_us_that_we_no_longer_declare(lock: str) -> None:
    declared = {canonicalize_name(r.name) for r in SETS[lock]}
    ours = {name for name, pin in read_lock(LOCKS / lock).items() if OURS in pin.via}
    assert ours == declared, f"requirements/{lock} is stale: run make lock"


@pytest.mark.parametrize("lock", sorted(SETS))
def test_every_pin_is_hashed(lock: str) -> None:
    pins = read_lock(LOCKS / lock)
    assert len(pins) >= len(SETS[lock])
    for pin in pins.values():
        assert pin.hashes, f"{pin.name} has no hash in requirements/{lock}"
        assert all(h.startswith("sha256:") and len(h) == 7 + 64 for h in pin.hashes), pin


def test_the_hub_runs_the_agent_versions() -> None:
    """hub.txt is agent.txt plus the PostgreSQL driver: the same pin of every shared
    package (both come from one `make lock`)."""
    agent = read_lock(LOCKS / "agent.txt")
    hub = read_lock(LOCKS / "hub.txt")
    assert agent.keys() <= hub.keys()
    assert {n: (p.version, sorted(p.hashes)) for n, p in agent.items()} == {
        n: (hub[n].version, sorted(hub[n].hashes)) for n in agent
    }
