"""The site↔hub topics come from one module (edge_agent.wire.topics): what the agent
publishes is what the hub subscribes to and parses, and the other way round."""

from __future__ import annotations

import pytest

from edge_agent.wire import topics

PREFIX = "edge/v1"


def _matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching (``+`` one level, ``#`` the rest); a ``$share/group/`` prefix
    names a shared subscription and is not part of the filter."""
    if topic_filter.startswith("$share/"):
        topic_filter = topic_filter.split("/", 2)[2]
    wanted, levels = topic_filter.split("/"), topic.split("/")
    for index, part in enumerate(wanted):
        if part == "#":
            return True
        if index >= len(levels) or (part != "+" and part != levels[index]):
            return False
    return len(wanted) == len(levels)


def test_the_documented_topics() -> None:
    assert topics.DEFAULT_PREFIX == PREFIX
    assert topics.alerts(PREFIX, "plant-a") == "edge/v1/plant-a/alerts"
    assert topics.site_status(PREFIX, "plant-a") == "edge/v1/plant-a/status"
    assert topics.results(PREFIX, "plant-a") == "edge/v1/plant-a/results"
    assert topics.work_order(PREFIX, "plant-a", 42) == "edge/v1/plant-a/workorders/42"
    assert topics.hub_status(PREFIX, "hub-1") == "edge/v1/hub/status/hub-1"


def test_what_one_side_publishes_the_other_subscribes_to() -> None:
    hub_filters = [topics.shared_alerts_filter(PREFIX, "hubs"), topics.site_status_filter(PREFIX)]
    site_filters = [
        topics.results(PREFIX, "plant-a"),
        topics.work_orders_filter(PREFIX, "plant-a"),
        topics.hub_status_filter(PREFIX),
    ]
    for published in (topics.alerts(PREFIX, "plant-a"), topics.site_status(PREFIX, "plant-a")):
        assert any(_matches(f, published) for f in hub_filters), published
        assert not any(_matches(f, published) for f in site_filters), published
    for published in (
        topics.results(PREFIX, "plant-a"),
        topics.work_order(PREFIX, "plant-a", 7),
        topics.hub_status(PREFIX, "hub-1"),
    ):
        assert any(_matches(f, published) for f in site_filters), published
        assert not any(_matches(f, published) for f in hub_filters), published
    # Another site's answers never reach this one.
    assert not any(_matches(f, topics.results(PREFIX, "plant-b")) for f in site_filters)
    assert topics.hub_status(PREFIX, "hub-1").startswith(topics.hub_status_under(PREFIX))
    assert topics.work_order(PREFIX, "plant-a", 7).startswith(
        topics.work_orders_under(PREFIX, "plant-a")
    )


@pytest.mark.parametrize("kind", ["alerts", "status"])
def test_the_hub_reads_back_the_site_topics(kind: str) -> None:
    build = topics.alerts if kind == "alerts" else topics.site_status
    parts = topics.parse_site_topic("plants/eu", build("plants/eu", "plant-a"))
    assert parts == topics.TopicParts("plant-a", kind)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "topic",
    [
        "edge/v1/plant-a/results",  # the hub's own answer
        "edge/v1/hub/status/hub-1",
        "edge/v1/Plant_A/alerts",  # not a site id
        "edge/v1/plant-a/alerts/x",
        "other/v1/plant-a/alerts",
        "edge/v1/+/alerts",
    ],
)
def test_a_topic_that_is_not_a_site_topic_is_none(topic: str) -> None:
    assert topics.parse_site_topic(PREFIX, topic) is None
