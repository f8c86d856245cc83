"""The engine's state as plain JSON data, and back.

What is saved is everything a restart needs to continue exactly where it stopped: per rule
its state, deadlines, episode (alert id, start, peak, priority, escalation levels reached,
notify) and history (last activation, chattering); per sensor its last reading time, last
good time and held value, and which staleness watchers have fired; the site's flood guard.

Restoring matches rules by id. A rule whose fingerprint (its whole definition) is unchanged
gets everything back. A changed rule keeps only an open episode (ACTIVE or CLEARING: no
second ``activated``, no lost ``cleared``) and its activation history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from edge_agent.errors import EdgeAgentError
from edge_agent.rules.compiled import NEVER
from edge_agent.rules.events import ACTIVE, CLEARING, NORMAL, STATE_NAMES
from edge_agent.rules.lifecycle_state import shift_lifecycle

if TYPE_CHECKING:
    from edge_agent.rules.compiled import CompiledRule
    from edge_agent.rules.engine import RuleEngine

SNAPSHOT_VERSION: Final = 1


class SnapshotError(EdgeAgentError, ValueError):
    """A saved state that does not have the expected shape."""


def _rule_data(rule: CompiledRule) -> dict[str, Any]:
    # Every kind writes the same keys (a limit rule's series keys are None).
    series = rule.condition.dump()
    return {
        "fingerprint": rule.fingerprint,
        "state": STATE_NAMES[rule.state],
        "deadline": rule.deadline,
        "flat_due": series["flat_due"],
        "pending_since": rule.pending_since,
        "held": rule.held,
        "peak": rule.peak,
        "priority": rule.priority,
        "alert_id": rule.alert_id,
        "started": rule.started,
        "notify": rule.notify,
        "levels": rule.active_levels,
        "cause": rule.cause,
        "stale": rule.stale,
        "stale_alarm": rule.stale_alarm,
        "gate_open": rule.gate_open,
        "prev": series["prev"],
        "anchor": series["anchor"],
        "last_activation": rule.last_activation,
        "episodes": rule.episodes,
        "chatter_times": list(rule.chatter_times or ()),
        "chattering": rule.chattering,
    }


def encode_sensors(engine: RuleEngine, only: set[str] | None) -> dict[str, list[Any]]:
    """Sensors that have seen a reading, as ``id: [last_time, last_good, value, has_value,
    [durations of fired staleness watchers]]`` (all of them, or those in ``only``)."""
    out: dict[str, list[Any]] = {}
    for sensor in engine.sensors.values():
        if sensor.last_time == NEVER or (only is not None and sensor.id not in only):
            continue
        out[sensor.id] = [
            sensor.last_time,
            sensor.last_good,
            sensor.value if sensor.has_value else None,
            sensor.has_value,
            [w.duration for w in sensor.watchers if w.fired],
        ]
    return out


def take_snapshot(
    engine: RuleEngine, sensors: set[str] | None = None, *, exact: bool = True
) -> dict[str, Any]:
    """Rules that left their initial state, and the sensors (all, or those in
    ``sensors``). ``exact`` says that nothing will change after it is taken (a snapshot
    handed to a caller, or the save at a clean shutdown); the saves made while running are
    not, since peaks and flatline runs move without a save."""
    rules = {}
    for rule in engine.rules:
        if (
            rule.state
            or rule.last_activation is not None
            or rule.episodes
            or not rule.condition.is_initial()
            or rule.stale
            or rule.gate_open != (rule.gate_sensor is None)
        ):
            rules[rule.id] = _rule_data(rule)
    out: dict[str, Any] = {
        "version": SNAPSHOT_VERSION,
        "site": engine.site_id,
        "lineage": engine.lineage,
        "now": engine.now,
        "rules": rules,
        "sensors": encode_sensors(engine, sensors),
        "flood": {
            "times": list(engine.guards.flood.times),
            "flooding": engine.guards.flood.flooding,
        },
        "exact": exact,
    }
    if engine.retired_episodes:
        # Removed rules' episode counts: a rule added back must not reuse an alert id.
        out["retired_episodes"] = dict(engine.retired_episodes)
    lifecycle = engine.lifecycle.dump()
    if lifecycle is not None:
        # Shelved, out of service, maintenance, acknowledged, verifying: read back by this
        # release, ignored by the one before (which keeps working on the same file).
        out["lifecycle"] = lifecycle
    return out


# The times a rule's saved data holds (each an int or None); ``prev`` and ``anchor`` are
# ``[value, time]`` pairs, ``chatter_times`` a list.
_RULE_TIMES: Final = ("deadline", "flat_due", "pending_since", "started", "last_activation")


def shift_snapshot(data: dict[str, Any], now_ns: int, *, down_ns: int = 0) -> dict[str, Any]:
    """``data`` with every time moved by the same amount, so that its ``now`` becomes
    ``now_ns``: the state continues on another clock (the agent's monotonic clock after a
    restart or a reboot). Durations between saved times are kept: a deadline due in 3 s
    when saved is due 3 s after ``now_ns``. A state with no ``now`` is returned as is.

    The alarm lifecycle's times are absolute: they move ``down_ns`` (how long the agent was
    down, by the wall clock) less, so a shelve that expired meanwhile is due at once."""
    try:
        return _shifted(data, now_ns, down_ns)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise SnapshotError(f"saved rule state has an unexpected shape: {exc}") from exc


def _shifted(data: dict[str, Any], now_ns: int, down_ns: int) -> dict[str, Any]:
    saved_now = data.get("now")
    if saved_now is None:
        return data
    delta = now_ns - int(saved_now)
    if data.get("lifecycle") is not None:
        data = {**data, "lifecycle": shift_lifecycle(data["lifecycle"], delta - down_ns)}

    def move(t: Any) -> int | None:
        return None if t is None else int(t) + delta

    out = dict(data)
    out["now"] = now_ns
    out["flood"] = {**data["flood"], "times": [move(t) for t in data["flood"]["times"]]}
    rules: dict[str, Any] = {}
    for rule_id, saved in data["rules"].items():
        rule = dict(saved)
        for key in _RULE_TIMES:
            rule[key] = move(saved.get(key))
        for pair in ("prev", "anchor"):
            if saved.get(pair) is not None:
                rule[pair] = [saved[pair][0], move(saved[pair][1])]
        rule["chatter_times"] = [move(t) for t in saved.get("chatter_times") or ()]
        rules[rule_id] = rule
    out["rules"] = rules
    for section in ("sensor_base", "sensors"):
        if section in data:
            out[section] = {
                sensor_id: [move(saved[0]), move(saved[1]), *saved[2:]]
                for sensor_id, saved in data[section].items()
            }
    return out


def restore_snapshot(engine: RuleEngine, data: dict[str, Any]) -> None:
    """Load ``data`` (from :func:`take_snapshot`) into a freshly built engine. The caller
    rebuilds the deadline heap afterwards."""
    try:
        _restore(engine, data)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise SnapshotError(f"saved rule state has an unexpected shape: {exc}") from exc


def _restore(engine: RuleEngine, data: dict[str, Any]) -> None:
    if data.get("version") != SNAPSHOT_VERSION:
        raise SnapshotError(f"unknown rule state version {data.get('version')!r}")
    if data.get("site") != engine.site_id:
        # Another site's state (a copied storage directory): not ours to continue.
        raise SnapshotError(f"saved rule state is for site {data.get('site')!r}")
    engine.now = data["now"]
    # A state saved before lineages existed continues with none (its ids stay as they were).
    lineage = data.get("lineage", "")
    if not isinstance(lineage, str) or len(lineage) > 64:
        raise SnapshotError("saved rule state has an unusable lineage")
    engine.lineage = lineage
    flood = data["flood"]
    engine.guards.flood.times = [int(t) for t in flood["times"]]
    engine.guards.flood.flooding = bool(flood["flooding"])
    # A transition save carries an older copy of every sensor and a fresh one of some.
    for section in ("sensor_base", "sensors"):
        for sensor_id, saved in data.get(section, {}).items():
            sensor = engine.sensors.get(sensor_id)
            if sensor is None:
                continue
            last_time, last_good, value, has_value, fired = saved
            sensor.last_time = int(last_time)
            sensor.last_good = last_good
            sensor.value = value
            sensor.has_value = bool(has_value)
            for watcher in sensor.watchers:
                watcher.fired = watcher.duration in fired
    rules_by_id = {rule.id: rule for rule in engine.rules}
    # A rule removed from the configuration keeps its episode count here (saved with the
    # state) until it comes back: episode numbers, hence alert ids, are never reused.
    retired = {str(k): int(v) for k, v in data.get("retired_episodes", {}).items()}
    for rule_id, saved in data["rules"].items():
        if rule_id not in rules_by_id and int(saved.get("episodes", 0)):
            retired[rule_id] = max(retired.get(rule_id, 0), int(saved["episodes"]))
    engine.retired_episodes = {k: v for k, v in retired.items() if k not in rules_by_id}
    for rule_id, count in retired.items():
        if rule_id in rules_by_id and rule_id not in data["rules"]:
            rules_by_id[rule_id].episodes = count
    exact = bool(data.get("exact", False))
    if not exact:
        # A gate that opens judges its rule's held value, which may be older than the last
        # samples before a crash: wait for the next sample instead.
        for gated in engine.rules:
            if gated.gate_sensor is not None and gated.sensor in engine.sensors:
                own = engine.sensors[gated.sensor]
                own.has_value = False
                own.value = None
    # Kept whatever changed in a rule; a removed rule's is dropped.
    engine.lifecycle.attach(data.get("lifecycle"))
    for rule_id, saved in data["rules"].items():
        rule = rules_by_id.get(rule_id)
        if rule is None:
            continue
        same = saved["fingerprint"] == rule.fingerprint
        state = STATE_NAMES.index(saved["state"])
        rule.last_activation = saved["last_activation"]
        # Kept whatever changed in the rule: a new episode must never reuse an id.
        rule.episodes = int(saved.get("episodes", 0))
        rule.chatter_times = [int(t) for t in saved["chatter_times"]] or None
        rule.chattering = bool(saved["chattering"])
        rule.stale = bool(saved["stale"])
        if same:
            rule.condition.load(saved, exact=exact, normal=state == NORMAL)
        if same:
            rule.gate_open = bool(saved["gate_open"])
        if same or state in (ACTIVE, CLEARING):
            rule.state = state
            rule.deadline = saved["deadline"]
            rule.pending_since = saved["pending_since"]
            rule.held = saved["held"]
            rule.peak = saved["peak"]
            rule.priority = saved["priority"]
            rule.alert_id = saved["alert_id"]
            rule.started = saved["started"]
            rule.notify = bool(saved["notify"])
            rule.active_levels = int(saved["levels"]) if same else 0
            rule.cause = saved["cause"]
            rule.stale_alarm = bool(saved["stale_alarm"])
        rule.refresh_fast()
