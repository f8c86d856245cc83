"""The alert schema shared by the agent and the hub (edge_agent.wire.alert), its bounds, and
the agent's work-order tracker accepting only plausible work-order ids."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from edge_agent.alerts import alert_problem as agent_check
from edge_agent.forwarders.workorder_status import WorkOrderTracker
from edge_agent.hub.app import default_replica_id
from edge_agent.hub.messages import validate_alert
from edge_agent.wire.alert import INT64_MAX, alert_problem
from tests.hub.conftest import make_alert

REPLICA_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def test_the_agent_and_the_hub_use_one_check() -> None:
    assert agent_check is alert_problem


def test_the_site_and_the_hub_read_one_topic_and_id_contract() -> None:
    """The topic prefix and the site id pattern are the wire's, not each config's own copy:
    a site file and a hub file accept and default the same values."""
    from edge_agent.config.models import SITE_ID_PATTERN, Mqtt
    from edge_agent.forwarders.hub_confirm import REPLICA_ID
    from edge_agent.hub.config import Broker
    from edge_agent.wire import topics
    from edge_agent.wire.alert import SITE_PATTERN

    for model in (Mqtt, Broker):
        field = model.model_fields["topic_prefix"]
        assert field.default == topics.DEFAULT_PREFIX
        assert [m.pattern for m in field.metadata if hasattr(m, "pattern")] == [
            topics.PREFIX_PATTERN
        ]
    assert SITE_ID_PATTERN == SITE_PATTERN == REPLICA_ID.pattern


@given(n=st.integers(0, 1 << 40))
def test_messages_the_agent_writes_pass(n: int) -> None:
    message = make_alert("site-a", n)
    message["work_order"]["assignees"] = [{"type": "USER", "id": 7}]
    message["work_order"]["categories"] = ["Electrical"]
    message["related_work_order"] = INT64_MAX
    message["decimals"] = n % 11
    message["timezone"] = ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires"][n % 3]
    assert alert_problem(message) is None
    checked = validate_alert(
        "site-a", json.dumps(message).encode(), known_sites={"site-a"}, max_bytes=65536
    )
    assert checked == message


@given(
    key=st.sampled_from(["time", "time_ns", "related_work_order", "value", "event_id", "unit"]),
    value=st.one_of(
        st.integers(min_value=INT64_MAX + 1),
        st.integers(max_value=-(INT64_MAX + 2)),
        st.just("2300-01-01T00:00:00Z"),
        st.just("1969-12-31T23:59:59Z"),
        st.floats(allow_nan=True).filter(lambda f: f != f or f in (float("inf"), -float("inf"))),
        st.text(min_size=300, max_size=400),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    ),
)
def test_out_of_bounds_values_are_refused(key: str, value: Any) -> None:
    # A short text is a fine event id, value or unit; it is out of bounds only as a time.
    assume(not (isinstance(value, str) and len(value) < 300 and key != "time"))
    message = make_alert("site-a", 1)
    message[key] = value
    problem = alert_problem(message)
    assert problem is not None and problem.startswith(key)


@given(
    key_value=st.one_of(
        st.tuples(
            st.just("decimals"),
            st.one_of(
                st.integers(max_value=-1), st.integers(min_value=11), st.booleans(), st.floats()
            ),
        ),
        st.tuples(
            st.just("timezone"),
            st.one_of(
                st.sampled_from(["../../etc/passwd", "Europe/Berlin ", "", "a" * 65, "UTC\n"]),
                st.integers(),
            ),
        ),
    )
)
def test_decimals_and_time_zone_are_bounded(key_value: tuple[str, Any]) -> None:
    """The two text hints are checked like every other field: a zone name is only the shape
    of one (no path, no spaces, at most 64), decimals 0..10."""
    key, value = key_value
    message = make_alert("site-a", 1)
    message[key] = value
    problem = alert_problem(message)
    assert problem is not None and problem.startswith(key)


@given(
    assignee=st.one_of(
        st.integers(),
        st.text(max_size=5),
        st.none(),
        st.fixed_dictionaries({"type": st.sampled_from(["USER", "TEAM"]), "id": st.just(10**30)}),
        st.fixed_dictionaries(
            # any type but the two valid ones (text of up to 4 can be "USER" or "TEAM")
            {
                "type": st.text(max_size=4).filter(lambda t: t not in ("USER", "TEAM")),
                "id": st.integers(1, 5),
            }
        ),
    )
)
def test_assignees_must_be_typed_ids(assignee: Any) -> None:
    message = make_alert("site-a", 1)
    message["work_order"]["assignees"] = [assignee]
    problem = alert_problem(message)
    assert problem is not None and problem.startswith("work_order.assignees[0]")


@given(work_order_id=st.one_of(st.integers(max_value=0), st.integers(min_value=INT64_MAX + 1)))
def test_the_tracker_accepts_only_plausible_work_order_ids(
    tmp_path_factory: Any, work_order_id: int
) -> None:
    state: Path = tmp_path_factory.mktemp("agent")
    tracker = WorkOrderTracker(state, "site-a")
    result = {
        "site": "site-a",
        "status": "ok",
        "rule": "r1",
        "alert_id": "a1",
        "work_order_id": work_order_id,
    }
    assert not tracker.on_message("edge/v1/site-a/results", json.dumps(result).encode())
    status = {"site": "site-a", "rule": "r1", "work_order_id": work_order_id, "status": "OPEN"}
    assert not tracker.on_message("edge/v1/site-a/workorders/1", json.dumps(status).encode())
    assert tracker.open_work_order_for("r1") is None
    # A map written by an older version with such an id is read without it.
    (state / "work-orders.json").write_text(
        json.dumps({"r1": {"alert_id": "a", "work_order_id": work_order_id, "status": "OPEN"}})
    )
    assert WorkOrderTracker(state, "site-a").open_work_order_for("r1") is None


def test_a_replica_id_is_derived_when_none_is_given() -> None:
    assert REPLICA_RE.match(default_replica_id())


def test_what_the_agent_renders_passes_the_hubs_check() -> None:
    """The agent writes against the same schema: every event of a rule with a full work-order
    template (categories, assignees, due date, location) renders to a valid message."""
    from edge_agent.rules import RuleEngine, to_alert_message
    from tests.rules.conftest import reading, site
    from tests.rules.test_render import RULE

    config = site([RULE])
    engine = RuleEngine(config)
    events = [*engine.feed(reading(0, 9.5)), *engine.feed(reading(60, 5))]
    assert [e.kind for e in events] == ["activated", "escalated", "cleared"]
    for event in events:
        message = to_alert_message(event, config)
        assert message is not None
        assert alert_problem(dict(message)) is None


def test_text_no_store_can_hold_is_refused_by_the_shared_check() -> None:
    """Found in review: a NUL passed the schema, SQLite stored it and PostgreSQL refused it
    (the two backends answered differently); a lone surrogate became a poison message that
    could not even be recorded."""
    from edge_agent.wire.alert import alert_problem

    assert alert_problem({"rule": "a\x00b"}) == "rule: NUL characters are not allowed"
    problem = alert_problem({"alert_id": "\udc80"})
    assert problem == "alert_id: text that is not valid Unicode"
    problem = alert_problem({"asset": {"\ud800": 1}})
    assert problem is not None and problem.encode("utf-8")


def _answer(payload: bytes) -> str | None:
    checked = validate_alert("site-a", payload, known_sites={"site-a"}, max_bytes=1 << 20)
    return checked.reason if not isinstance(checked, dict) else None


def test_a_nul_or_a_lone_surrogate_anywhere_is_still_refused() -> None:
    """The hub skips the walk over every text when the payload has no ``\\u`` escape (issue
    16): the only ways to a NUL or a lone surrogate are escapes, and these are refused."""
    for text in ("\x00", "a\x00b", "\ud800", "x\udfffy"):
        for where in ("description", "key"):
            message = make_alert("site-a", 1)
            if where == "key":
                message["work_order"][text] = 1
            else:
                message["work_order"]["description"] = text
            payload = json.dumps(message).encode()  # ensure_ascii: \u escapes
            assert b"\\u" in payload
            assert _answer(payload) == "invalid_fields", (text, where)
    # Raw bytes cannot carry them: strict UTF-8 and strict JSON refuse them first.
    good = json.dumps(make_alert("site-a", 1))
    assert _answer(good.replace("Pump", "Pu\x00mp").encode()) == "not_json"
    raw_surrogate = good.encode().replace(b"Pump", b"Pu\xed\xa0\x80mp")
    assert _answer(raw_surrogate) == "not_json"
    assert _answer(json.dumps(make_alert("site-a", 1, sensor="caf\u00e9")).encode()) is None


@given(st.text(max_size=40), st.booleans())
def test_skipping_the_text_walk_never_changes_the_answer(text: str, ascii_only: bool) -> None:
    message = make_alert("site-a", 1)
    message["work_order"]["description"] = text
    message["asset"]["name"] = text[:20]
    try:
        payload = json.dumps(message, ensure_ascii=ascii_only).encode("utf-8")
    except UnicodeEncodeError:
        assume(False)  # a lone surrogate has no UTF-8 bytes: only an escape carries it
        return
    data = json.loads(payload)
    expected = "invalid_fields" if alert_problem(data) is not None else None
    assert _answer(payload) == expected


@pytest.mark.parametrize(
    ("splice", "expected"),
    [
        (b"Pu\xc0\x80mp", "not_json"),  # an overlong NUL: strict UTF-8 refuses it
        (b"Pu\xe0\x80\x80mp", "not_json"),  # an overlong NUL in three bytes
        (b"Pu\xf4\x90\x80\x80mp", "not_json"),  # beyond U+10FFFF
        (b"Pu\\\\u0000mp", None),  # an escaped backslash, then "u0000": storable text
        (b"Pu\\\\\\u0000mp", "invalid_fields"),  # an escaped backslash, then a real NUL
        (b"Pu\\\\\\ud800mp", "invalid_fields"),  # ... then a lone surrogate
    ],
)
def test_payloads_aimed_at_the_escape_shortcut(splice: bytes, expected: str | None) -> None:
    """Review of issue 16's shortcut: bytes that are no UTF-8 at all, and a ``\\\\u`` that is
    an escaped backslash followed by ``u`` (the walk runs, and finds only what is there)."""
    payload = json.dumps(make_alert("site-a", 1)).encode().replace(b"Pump", splice, 1)
    assert _answer(payload) == expected


def test_deep_nesting_is_answered_the_same_with_or_without_an_escape() -> None:
    """Review: with no ``\\u`` escape the walk (which could hit the recursion limit) is
    skipped; the answer for deeply nested extra fields must not depend on that."""
    for depth in (50, 500, 900, 5000):
        body = json.dumps(make_alert("site-a", 1))[:-1]
        plain = f'{body}, "extra": {"[" * depth}{"]" * depth}}}'.encode()
        escaped = plain[:-1] + b', "x": "\\u0041"}'
        assert _answer(plain) == _answer(escaped), depth
