"""A reload adopts the running configuration's instances for every alike section
(``service/config_reuse.py``, issue 16): the new configuration reads, dumps and compares
as the new file says, an unchanged file leaves nothing of its own, and values that are
only equal (``1`` and ``1.0``, ``0.0`` and ``-0.0``, an option written or defaulted) are
not adopted."""

from __future__ import annotations

import asyncio
import copy
import gc
import weakref
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.config.loader import load_site
from edge_agent.config.models import SiteConfig, site_json
from edge_agent.rules.engine import same_sections
from edge_agent.service.config_reuse import adopt_unchanged, alike
from edge_agent.service.pipeline import Agent
from tests.config.model_tree import fields_set
from tests.config.test_properties import site_documents
from tests.conftest import free_port
from tests.service.conftest import site_document, write_site
from tests.service.test_source_signature import DOCUMENT


def parsed(document: dict[str, Any]) -> SiteConfig:
    return SiteConfig.model_validate(copy.deepcopy(document))


def test_an_unchanged_file_is_made_of_the_running_sections() -> None:
    old, new = parsed(DOCUMENT), parsed(DOCUMENT)
    assert not same_sections(old, new)
    adopt_unchanged(old, new)
    assert same_sections(old, new)
    assert site_json(new) == site_json(parsed(DOCUMENT))


def test_a_change_keeps_its_own_instance_and_adopts_the_rest() -> None:
    old = parsed(DOCUMENT)
    document = copy.deepcopy(DOCUMENT)
    document["sensors"]["a"]["unit"] = "degC"
    document["rules"][0]["high"]["limit"] = 6
    new = parsed(document)
    changed_sensor, changed_rule = new.sensors["a"], new.rules[0]
    adopt_unchanged(old, new)
    assert new.sensors["a"] is changed_sensor and new.rules[0] is changed_rule
    assert new.sensors["b"] is old.sensors["b"] and new.sensors["c"] is old.sensors["c"]
    assert new.connections is old.connections and new.assets is old.assets
    assert site_json(new) == site_json(parsed(document))


def test_equal_values_that_are_not_alike_are_not_adopted() -> None:
    edits = [
        lambda d: d["rules"][0]["high"].update(deadband=0.0),  # the default, written
        lambda d: d["rules"][0]["high"].update(deadband=-0.0),
        lambda d: d["sensors"]["b"]["scale"].update(factor=0.1000000001),
        lambda d: d["sensors"]["b"]["register"].pop("type"),  # defaulted, not written
    ]
    for edit in edits:
        document = copy.deepcopy(DOCUMENT)
        edit(document)
        old, new = parsed(DOCUMENT), parsed(document)
        want = site_json(new)
        adopt_unchanged(old, new)
        assert site_json(new) == want
        assert not same_sections(old, new)
    assert not alike(0.0, -0.0) and not alike(1, 1.0) and not alike(True, 1)
    assert alike(float("nan"), float("nan")) and alike({"a": [1, 2.5]}, {"a": [1, 2.5]})
    assert not alike({"a": 1, "b": 2}, {"b": 2, "a": 1})  # another order dumps otherwise


@st.composite
def two_sites(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A running site and a new one mixing its sections with another site's."""
    old = draw(site_documents())
    other = draw(site_documents())
    new = copy.deepcopy(old)
    for key in sorted(set(old) | set(other)):
        if draw(st.booleans()):
            if key in other:
                new[key] = copy.deepcopy(other[key])
            else:
                new.pop(key, None)
    return old, new


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sites=two_sites())
def test_any_reload_reads_dumps_and_compares_as_its_file(
    sites: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    old_document, new_document = sites
    old, new = parsed(old_document), parsed(new_document)
    want = (site_json(new), new.model_dump_json(), fields_set(new))
    adopt_unchanged(old, new)
    assert (site_json(new), new.model_dump_json(), fields_set(new)) == want
    assert new == parsed(new_document)
    assert site_json(old) == site_json(parsed(old_document))  # the running one untouched
    if new_document == old_document:
        assert same_sections(old, new)


async def test_an_unchanged_reload_keeps_the_source_and_rules_and_frees_the_new_copy(
    tmp_path: Path,
) -> None:
    document = site_document(
        modbus_port=free_port(),  # nothing listens: the source retries, harmlessly
        health_port=free_port(),
        storage=tmp_path / "state",
        forwarding={},
    )
    del document["forwarding"]
    site = write_site(tmp_path / "site.yaml", document)
    config = await asyncio.to_thread(load_site, site)
    agent = Agent(config, tmp_path, tmp_path / "state")
    await agent.start()
    try:
        assert agent.engine is not None
        source, rules = agent.sources["plc1"], list(agent.engine.rules)
        new = await asyncio.to_thread(load_site, site)
        copies = [weakref.ref(s) for s in new.sensors.values()]
        running = weakref.ref(config)
        del config
        assert await agent.apply_config(new) == []
        assert agent.sources["plc1"] is source
        assert all(a is b for a, b in zip(agent.engine.rules, rules, strict=True))
        gc.collect()
        assert [ref() for ref in copies] == [None] * len(copies)  # the new file's sensors
        assert running() is None  # nothing holds the configuration it replaced

        # A changed rule: applied, with the kept source and every other section adopted.
        document["rules"][0]["high"]["limit"] = 9.5
        changed = await asyncio.to_thread(load_site, write_site(site, document))
        before = agent.config
        changes = await agent.apply_config(changed)
        assert changes == ["rule changed: p101-vibration-high"]
        assert agent.sources["plc1"] is source
        assert agent.engine.rules[0].rule is changed.rules[0]
        assert changed.rules[0] is not before.rules[0] and changed.rules[1] is before.rules[1]
        assert changed.sensors is before.sensors
    finally:
        await agent.stop()
