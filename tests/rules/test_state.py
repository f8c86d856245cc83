"""State that survives restarts and config reloads."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edge_agent.readings import Quality
from edge_agent.rules import RuleEngine, RuleStateStore
from tests.rules.conftest import reading, site

RULE = {
    "id": "hot",
    "asset": "p101",
    "sensor": "temp",
    "high": {"limit": 80, "deadband": 5},
    "on_delay": "10s",
    "off_delay": "5s",
    "escalate": [{"above": 90, "priority": "HIGH"}],
}


def test_kill_mid_episode_continues_it(tmp_path: Path) -> None:
    store = RuleStateStore(tmp_path / "state" / "rules.json")
    config = site([RULE])
    first = RuleEngine(config, store)
    assert first.feed(reading(0, 85)) == []
    [activated] = first.tick(reading(10, 0).source_time_ns)
    [escalated] = first.feed(reading(11, 95))
    assert (activated.kind, escalated.kind) == ("activated", "escalated")
    assert first.feed(reading(12, 70)) == []  # CLEARING, off-delay running
    # "kill": drop the engine without any shutdown; the file is all that is left.
    del first

    second = RuleEngine(config, RuleStateStore(tmp_path / "state" / "rules.json"))
    assert second.rule_states() == {"hot": "CLEARING"}
    assert second.feed(reading(13, 96)) == []  # back to ACTIVE, HIGH already reached
    assert second.feed(reading(14, 70)) == []
    [cleared] = second.tick(reading(19, 0).source_time_ns)
    assert cleared.kind == "cleared"
    assert cleared.alert_id == activated.alert_id
    assert cleared.priority == "HIGH"
    assert cleared.peak == 96


CHILD = """
import json, sys
from pathlib import Path
from edge_agent.rules import RuleEngine, RuleStateStore
from tests.rules.conftest import reading, site

engine = RuleEngine(site([json.loads(sys.argv[2])]), RuleStateStore(Path(sys.argv[1])))
events = engine.feed(reading(0, 85)) + engine.tick(reading(10, 0).source_time_ns)
events += engine.feed(reading(11, 95)) + engine.feed(reading(12, 70))
print(json.dumps([[e.kind, e.alert_id] for e in events]), flush=True)
sys.stdin.read()  # mid-episode (CLEARING) until killed
"""


def test_sigkill_mid_episode_continues_it(tmp_path: Path) -> None:
    """A real process killed with SIGKILL in CLEARING: the next one neither activates
    again nor loses the ``cleared``."""
    path = tmp_path / "rules.json"
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), json.dumps(RULE)],
        cwd=Path(__file__).resolve().parent.parent.parent,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        line = child.stdout.readline()  # EOF (""), if the child failed
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    [[kind, alert_id], [kind2, _]] = json.loads(line)
    assert (kind, kind2) == ("activated", "escalated")

    second = RuleEngine(site([RULE]), RuleStateStore(path))
    assert second.rule_states() == {"hot": "CLEARING"}
    events = second.feed(reading(13, 71)) + second.tick(reading(30, 0).source_time_ns)
    assert [(e.kind, e.alert_id, e.priority, e.time_ns) for e in events] == [
        ("cleared", alert_id, "HIGH", reading(17, 0).source_time_ns)
    ]


def test_pending_survives_restart_and_activates_on_time(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    config = site([RULE])
    RuleEngine(config, RuleStateStore(path)).feed(reading(0, 85))
    second = RuleEngine(config, RuleStateStore(path))
    [activated] = second.tick(reading(30, 0).source_time_ns)
    assert activated.time_ns == reading(10, 0).source_time_ns
    assert activated.value == 85


def test_saved_on_every_transition_atomically(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    engine = RuleEngine(site([RULE]), RuleStateStore(path))
    engine.feed(reading(0, 50))
    assert engine.counters["state_saves"] == 0  # no transition, nothing written
    engine.feed(reading(1, 85))
    assert json.loads(path.read_text())["rules"]["hot"]["state"] == "PENDING"
    engine.feed(reading(2, 86))  # PENDING ends with the held value: saved
    assert json.loads(path.read_text())["rules"]["hot"]["held"] == 86
    engine.tick(reading(11, 0).source_time_ns)  # ACTIVE
    saves = engine.counters["state_saves"]
    engine.feed(reading(12, 87))  # ACTIVE, only the peak moved: not a transition
    assert engine.counters["state_saves"] == saves
    assert json.loads(path.read_text())["rules"]["hot"]["peak"] == 86
    engine.flush()  # the caller's periodic flush writes it
    assert json.loads(path.read_text())["rules"]["hot"]["peak"] == 87
    assert [p.name for p in tmp_path.iterdir()] == ["rules.json"]  # no temp files left


def test_batched_mode_saves_on_flush(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    engine = RuleEngine(site([RULE]), RuleStateStore(path), durable=False)
    engine.feed(reading(1, 85))
    assert engine.dirty and not path.exists()
    assert engine.flush()
    assert not engine.dirty and path.exists()


def test_a_caller_can_ask_for_a_save_without_a_rule_change(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    engine = RuleEngine(site([RULE]), RuleStateStore(path))
    engine.feed(reading(0, 50))
    assert engine.flush() and not path.exists()  # nothing changed: nothing written
    engine.mark_soft_changed()
    engine.feed(reading(1, 51))  # durable mode writes a soft change only with a transition
    assert not path.exists()
    assert engine.flush() and path.exists()  # ... or at the next flush
    path.unlink()
    engine.mark_changed()
    engine.feed(reading(2, 52))  # durable mode writes a marked change at the next call
    assert path.exists() and not engine.dirty
    path.unlink()
    engine.mark_changed()
    assert engine.flush() and path.exists()
    assert engine.counters["state_saves"] == 3


def test_corrupt_state_file_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "rules.json"
    path.write_text('{"version": 1, "rules": {')
    engine = RuleEngine(site([RULE]), RuleStateStore(path))
    assert engine.rule_states() == {"hot": "NORMAL"}
    assert (tmp_path / "rules.json.corrupt").exists()
    assert "damaged" in caplog.text


def test_state_of_another_site_is_not_used(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    RuleEngine(site([RULE]), RuleStateStore(path)).feed(reading(1, 85))
    data = json.loads(path.read_text())
    data["site"] = "other-site"
    path.write_text(json.dumps(data))
    engine = RuleEngine(site([RULE]), RuleStateStore(path))
    assert engine.rule_states() == {"hot": "NORMAL"}


def test_save_failure_is_counted_and_retried(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    engine = RuleEngine(site([RULE]), RuleStateStore(blocker / "rules.json"))
    blocker.write_text("")  # the state directory is now a file: saving fails
    events = engine.feed(reading(1, 95))
    assert events == []  # PENDING; the failure does not lose anything
    assert engine.counters["state_save_errors"] == 1 and engine.dirty
    blocker.unlink()
    engine.feed(reading(2, 96))  # the next call saves what the failed one could not
    assert engine.counters["state_saves"] == 1 and not engine.dirty
    assert json.loads((blocker / "rules.json").read_text())["rules"]["hot"]["peak"] == 96


def test_reconfigure_keeps_unchanged_and_open_episodes() -> None:
    other = {**RULE, "id": "other", "on_delay": "0s"}
    engine = RuleEngine(site([RULE, other]))
    [activated] = engine.feed(reading(0, 85))  # "other" activates, "hot" is PENDING
    assert activated.rule_id == "other"
    # "other" changes its limit while ACTIVE: its episode continues with the new limit.
    changed = {**other, "high": {"limit": 100}}
    engine.reconfigure(site([RULE, changed]))
    assert engine.rule_states() == {"hot": "PENDING", "other": "ACTIVE"}
    [hot_active] = engine.tick(reading(10, 0).source_time_ns)
    assert hot_active.rule_id == "hot"
    assert engine.feed(reading(11, 89)) == []  # below the new limit 100 - 5: CLEARING
    [cleared] = engine.tick(reading(16, 0).source_time_ns)
    assert cleared.rule_id == "other" and cleared.alert_id == activated.alert_id


def test_reconfigure_drops_removed_rules_and_changed_pending() -> None:
    engine = RuleEngine(site([RULE]))
    engine.feed(reading(0, 85))
    engine.reconfigure(site([{**RULE, "on_delay": "20s"}]))
    assert engine.rule_states() == {"hot": "NORMAL"}
    assert engine.tick(reading(30, 0).source_time_ns) == []
    engine.reconfigure(site([]))
    assert engine.rule_states() == {}


def test_counters() -> None:
    engine = RuleEngine(site([RULE]))
    engine.feed(reading(5, 50))
    engine.feed(reading(5, 50))  # as old as the last: dropped
    engine.feed(reading(4, 50))  # older: dropped
    engine.feed(reading(6, None, quality=Quality.BAD))
    engine.feed(reading(7, float("nan")))
    engine.feed(reading(8, "hot"))  # a string for a high limit
    engine.feed(reading(9, 1, sensor="nosuch"))
    counters = engine.counters
    assert counters["dropped_old_readings"] == 2
    assert counters["bad_readings"] == 2
    assert counters["wrong_type_readings"] == 1
    assert counters["unknown_sensor_readings"] == 1


def test_metrics_views() -> None:
    config = site(
        [
            {
                **RULE,
                "on_delay": "0s",
                "off_delay": "0s",
                "chattering": {"activations": 2, "window": "10s"},
            }
        ],
        stale_after="30s",
    )
    engine = RuleEngine(config)
    engine.feed(reading(0, 85))
    engine.feed(reading(1, 50))
    engine.feed(reading(2, 85))
    assert engine.rule_states() == {"hot": "ACTIVE"}
    assert engine.chattering() == {"hot": True}
    engine.tick(reading(40, 0).source_time_ns)
    assert engine.chattering() == {"hot": False}  # quiet for a whole window
    assert engine.stale_sensors() == ["temp"]
    engine.tick(reading(50, 0).source_time_ns)
    engine.feed(reading(45, 50, sensor="level"))  # newer for "level", behind the clock
    assert engine.counters["late_readings"] == 1
    # A poll trailing the agent's clock tick by milliseconds is normal, not late.
    engine.tick(reading(60, 0).source_time_ns)
    engine.feed(reading(59.95, 50, sensor="level"))
    assert engine.counters["late_readings"] == 1


def test_deadline_fired_by_an_ignored_reading_is_saved(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    engine = RuleEngine(site([RULE]), RuleStateStore(path))
    engine.feed(reading(0, 85))
    [activated] = engine.feed(reading(10, 1, sensor="nosuch"))  # unknown, but time moved
    assert activated.kind == "activated"
    assert json.loads(path.read_text())["rules"]["hot"]["state"] == "ACTIVE"


FLAT = {"id": "stuck", "asset": "p101", "sensor": "temp", "flatline": {"for": "30s"}}


def test_crash_never_reports_a_stuck_sensor_that_was_moving(tmp_path: Path) -> None:
    """The flatline run's start moves with every changing sample without a save; after a
    crash the run restarts instead of firing from a start that is out of date."""
    path = tmp_path / "rules.json"
    config = site([RULE, FLAT])
    engine = RuleEngine(config, RuleStateStore(path))
    engine.feed(reading(0, 85))  # "hot" goes PENDING: a save, with the run starting at 0
    for second in range(1, 40):
        engine.feed(reading(second, 85 + second % 2))  # moving: the run keeps restarting
    restarted = RuleEngine(config, RuleStateStore(path))
    events = restarted.tick(reading(45, 0).source_time_ns)
    assert [e.rule_id for e in events if e.kind == "activated"] == []
    assert restarted.rule_states()["stuck"] == "NORMAL"


def test_clean_shutdown_keeps_a_flatline_run(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    config = site([FLAT])
    engine = RuleEngine(config, RuleStateStore(path))
    engine.feed(reading(0, 5))
    engine.feed(reading(10, 5))
    assert engine.close()
    restarted = RuleEngine(config, RuleStateStore(path))
    [activated] = restarted.tick(reading(31, 0).source_time_ns)
    assert activated.time_ns == reading(30, 0).source_time_ns


def test_crash_during_pending_keeps_the_held_value(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    config = site([RULE])
    engine = RuleEngine(config, RuleStateStore(path))
    engine.feed(reading(0, 85))
    engine.feed(reading(5, 95))  # still PENDING: the value the activation will carry
    del engine  # killed
    restarted = RuleEngine(config, RuleStateStore(path))
    activated, escalated = restarted.tick(reading(10, 0).source_time_ns)
    assert (activated.kind, activated.value) == ("activated", 95)
    assert (escalated.kind, escalated.priority) == ("escalated", "HIGH")


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.update(sensors=[1, 2]),
        # Not a version at all (a later release's version is refused instead: tests/upgrade).
        lambda d: d.update(version="one"),
        lambda d: d.update(version=0),
        lambda d: d["rules"]["hot"].update(state="SLEEPING"),
        lambda d: d.update(flood="x"),
    ],
)
def test_state_of_the_wrong_shape_is_not_used(tmp_path: Path, damage: Any) -> None:
    path = tmp_path / "rules.json"
    RuleEngine(site([RULE]), RuleStateStore(path)).feed(reading(1, 85))
    data = json.loads(path.read_text())
    damage(data)
    path.write_text(json.dumps(data))
    engine = RuleEngine(site([RULE]), RuleStateStore(path))
    assert engine.rule_states() == {"hot": "NORMAL"}
    assert engine.feed(reading(2, 85)) == []  # and it works


def test_unreadable_state_is_a_clear_error(tmp_path: Path) -> None:
    from edge_agent.rules import StateStoreError

    path = tmp_path / "rules.json"
    path.mkdir()  # a directory where the file should be: reading it fails
    with pytest.raises(StateStoreError, match="cannot read the rule state"):
        RuleEngine(site([RULE]), RuleStateStore(path))


def test_a_rule_removed_and_added_back_never_reuses_an_alert_id(tmp_path: Path) -> None:
    """Commenting a rule out and back in (a reload, or a restart in between) continues its
    episode count: its next episode must not get the id of one the ledger already knows."""
    path = tmp_path / "state" / "rules.json"
    plain = {"id": "hot", "asset": "p101", "sensor": "temp", "high": {"limit": 80}}
    other = {**plain, "id": "other"}
    engine = RuleEngine(site([plain]), RuleStateStore(path))
    [first] = engine.feed(reading(0, 85))
    engine.feed(reading(1, 70))
    engine.reconfigure(site([other]))  # reload without "hot"
    engine.reconfigure(site([plain, other]))  # and with it again
    seen = {first.alert_id}
    activated = [e for e in engine.feed(reading(2, 85)) if e.rule_id == "hot"]
    assert activated[0].alert_id not in seen
    seen.add(activated[0].alert_id)
    engine.feed(reading(3, 70))
    # A restart without "hot" (saving), then one with it.
    without = RuleEngine(site([other]), RuleStateStore(path))
    without.feed(reading(4, 85))
    again = RuleEngine(site([plain, other]), RuleStateStore(path))
    again.feed(reading(5, 70))
    [third] = [e for e in again.feed(reading(6, 85)) if e.rule_id == "hot"]
    assert third.kind == "activated" and third.alert_id not in seen


def test_an_episode_raised_while_saves_failed_is_never_raised_again_under_its_id(
    tmp_path: Path,
) -> None:
    """A full disk fails the rule-state saves while the alerts still go out; after the disk
    is freed and the agent restarts from the last save, the episode count it reads is
    behind. Its next episode must not get the id of the one delivered meanwhile (the ledger
    and the hub would drop it as already done)."""
    folder = tmp_path / "state"
    plain = {"id": "hot", "asset": "p101", "sensor": "temp", "high": {"limit": 80}}
    engine = RuleEngine(site([plain]), RuleStateStore(folder / "rules.json"))
    [first] = engine.feed(reading(0, 85))
    engine.feed(reading(1, 70))
    assert engine.flush()
    folder.rename(tmp_path / "kept")
    folder.write_text("")  # saves fail from now on (as on a full disk)
    [second] = engine.feed(reading(2, 85))  # still goes out
    engine.feed(reading(3, 70))
    assert not engine.flush()
    folder.unlink()  # the disk is freed; the last good save is what a restart reads
    (tmp_path / "kept").rename(folder)
    restarted = RuleEngine(site([plain]), RuleStateStore(folder / "rules.json"))
    restarted.feed(reading(4, 70))
    [third] = restarted.feed(reading(5, 85))
    assert third.kind == "activated"
    assert third.alert_id not in {first.alert_id, second.alert_id}
