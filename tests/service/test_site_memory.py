"""What the running agent keeps of its site file (issue 16): the child's site check brings
back the same models with no more options set than the file had, and the secret scan
walks the models in place, finding what a dump of them would show."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from edge_agent.config.loader import check_site_files
from edge_agent.config.models import SiteConfig, share_fields_sets, site_json
from edge_agent.service import isolated_load
from edge_agent.service.secret_scan import _references, environment_secrets, secret_references
from tests.config.model_tree import fields_set
from tests.conftest import REPO_ROOT

SITES = [
    path
    for path in sorted((REPO_ROOT / "configs").rglob("*.yaml"))
    if check_site_files([path])[0] is not None
]


def test_the_example_sites_are_found() -> None:
    assert len(SITES) >= 5


@pytest.mark.parametrize("site", SITES, ids=lambda p: p.name)
def test_the_child_check_brings_back_the_same_models_with_the_same_options_set(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(isolated_load, "ISOLATE_ABOVE_BYTES", 0)
    config, _diagnostics, _files = isolated_load.check_isolated(site)
    expected, _ = check_site_files([site])
    assert config is not None and expected is not None
    assert config == expected
    assert fields_set(config) == fields_set(expected)


@pytest.mark.parametrize("site", SITES, ids=lambda p: p.name)
def test_the_secret_scan_of_the_models_finds_what_their_dump_shows(site: Path) -> None:
    config, _ = check_site_files([site])
    assert config is not None
    dumped = config.model_dump(mode="python", by_alias=True)
    assert secret_references(config) == sorted(set(_references(dumped)))
    assert environment_secrets(config) == sorted(
        r for r in set(_references(dumped)) if r.startswith("${")
    )


def test_the_site_json_keeps_references_and_every_other_json_dump_masks_them() -> None:
    config, _ = check_site_files([REPO_ROOT / "configs" / "demo" / "site.yaml"])
    assert config is not None and config.forwarding is not None
    assert '"${MAINTAINX_API_KEY}"' in site_json(config)
    assert "MAINTAINX_API_KEY" not in config.model_dump_json()
    assert config.model_dump(mode="json")["forwarding"]["maintainx"]["api_key"] == "***"
    assert SiteConfig.model_validate_json(site_json(config)) == config


def test_models_with_the_same_options_set_share_one_set_and_copies_do_not_touch_it() -> None:
    config, _ = check_site_files([REPO_ROOT / "configs" / "examples" / "modbus-tcp.yaml"])
    assert config is not None
    expected = fields_set(config)
    dumped = site_json(config)
    share_fields_sets(config)
    assert fields_set(config) == expected and site_json(config) == dumped
    registers = [s.register_ for s in config.sensors.values() if s.register_ is not None]
    alike = [r for r in registers if r.model_fields_set == registers[0].model_fields_set]
    assert len(alike) >= 2
    assert all(r.model_fields_set is alike[0].model_fields_set for r in alike)
    copied = alike[0].model_copy(update={"address": 7})
    assert "address" in copied.model_fields_set
    assert alike[1].model_fields_set == expected_set(alike[1])
    with pytest.raises(ValidationError):
        alike[1].address = 9  # type: ignore[misc]  # frozen: the shared set cannot grow


def expected_set(model: BaseModel) -> set[str]:
    return set(model.model_dump(exclude_unset=True))
