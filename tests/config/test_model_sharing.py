"""Equal parts of a site share one instance (``config/models/sharing.py``, issue 16): the
configuration reads, dumps and compares as before, and parts that only look alike (``1``
and ``1.0``, an option written and the same value by default) stay apart."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from pydantic import BaseModel

from edge_agent.config.models import SiteConfig, dump_site, site_json
from edge_agent.config.models.sharing import share_equal_models
from tests.config.model_tree import fields_set
from tests.config.test_properties import site_documents


def rule(rule_id: str, sensor: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": rule_id,
        "asset": "P-101",
        "sensor": sensor,
        "chattering": {"activations": 5, "window": "1m"},
        "work_order": {"title": "{asset.name}: {value}"},
        **extra,
    }


def site(rules: list[dict[str, Any]]) -> SiteConfig:
    sensors = {
        f"t{i}": {
            "connection": "plc1",
            "register": {"table": "holding", "address": i},
            "scale": {"factor": 0.1},
        }
        for i in range(4)
    }
    return SiteConfig.model_validate(
        {
            "version": 1,
            "site": {"id": "plant-07"},
            "connections": {"plc1": {"protocol": "modbus-tcp", "host": "127.0.0.1"}},
            "assets": {"P-101": {"maintainx_id": 1, "name": "Pump"}},
            "sensors": sensors,
            "rules": rules,
        }
    )


def test_equal_sections_become_one_instance_and_the_site_reads_the_same() -> None:
    config = site([rule(f"r{i}", f"t{i}", high={"limit": 80}) for i in range(4)])
    before = (site_json(config), config.model_dump(), fields_set(config))
    copy = config.model_copy(deep=True)
    assert config.rules[0].chattering is not config.rules[1].chattering
    share_equal_models(config)
    assert (site_json(config), config.model_dump(), fields_set(config)) == before
    assert config == copy
    for name in ("chattering", "work_order", "high"):
        assert len({id(getattr(r, name)) for r in config.rules}) == 1, name
    assert len({id(s.scale) for s in config.sensors.values()}) == 1
    # Sensors, registers and rules are each their own.
    assert len({id(s.register_) for s in config.sensors.values()}) == 4


def test_values_that_are_equal_but_not_alike_stay_apart() -> None:
    config = site(
        [
            rule("r0", "t0", high={"limit": 0.0}, only_when={"sensor": "t3", "equals": True}),
            rule("r1", "t1", high={"limit": -0.0}, only_when={"sensor": "t3", "equals": 1.0}),
            rule("r2", "t2", high={"limit": 0.0}, only_when={"sensor": "t3", "equals": "1"}),
        ]
    )
    dumped = dump_site(config)
    share_equal_models(config)
    assert dump_site(config) == dumped
    highs = [r.high for r in config.rules]
    assert highs[0] is highs[2] and highs[0] is not highs[1]  # 0.0 == -0.0, not alike
    assert [repr(h.limit) for h in highs if h is not None] == ["0.0", "-0.0", "0.0"]
    gates = [r.only_when for r in config.rules]
    assert len({id(g) for g in gates}) == 3  # True == 1.0, not alike; "1" is text
    assert [g.equals for g in gates if g is not None] == [True, 1.0, "1"]


def test_an_option_written_and_the_same_value_by_default_stay_apart() -> None:
    # deadband 0 is the default: written or not, the value is equal, the site file is not.
    config = site(
        [
            rule("r0", "t0", high={"limit": 80}),
            rule("r1", "t1", high={"limit": 80, "deadband": 0}),
        ]
    )
    share_equal_models(config)
    first, second = (r.high for r in config.rules)
    assert first is not second
    assert first is not None and second is not None
    assert "deadband" not in first.model_fields_set and "deadband" in second.model_fields_set


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=site_documents())
def test_any_site_dumps_and_compares_the_same_after_sharing(document: dict[str, Any]) -> None:
    config = SiteConfig.model_validate(document)
    copy = SiteConfig.model_validate(document)
    before = (site_json(config), config.model_dump_json(), fields_set(config))
    share_equal_models(config)
    assert (site_json(config), config.model_dump_json(), fields_set(config)) == before
    assert config == copy
    assert all_models_frozen(config)


def all_models_frozen(node: Any) -> bool:
    if isinstance(node, BaseModel):
        return bool(node.model_config.get("frozen")) and all(
            all_models_frozen(value) for value in node.__dict__.values()
        )
    if isinstance(node, dict):
        return all(all_models_frozen(value) for value in node.values())
    if isinstance(node, list | tuple):
        return all(all_models_frozen(value) for value in node)
    return True
