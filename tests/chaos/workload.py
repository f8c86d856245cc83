"""The workload: one thread per site drives its sensor through alarm episodes, so the
harness knows every episode it caused. An episode counts only once the agent showed the rule
ACTIVE (its /metrics): a value held while the agent was down or cut from its PLC is not an
activation by the rule semantics, and the checker must not expect a work order for it."""

from __future__ import annotations

import random
import threading
import time
import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from tests.chaos.estate import RULES, Estate, RuleSpec

MAX_HOLD_S = 60.0
"""Longest a value is held waiting for the agent to see it (down agents, partitions)."""


@dataclass
class Episode:
    site: str
    n: int
    value: float
    priority: str
    raised_at: float  # monotonic
    seen_at: float | None = None
    lowered_at: float | None = None
    wiggled: bool = False

    @property
    def seen(self) -> bool:
        return self.seen_at is not None


def rule_state(port: int, rule: str) -> str | None:
    """The rule's state from the agent's /metrics; None when the agent does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            body = response.read().decode()
    except OSError:
        return None
    for family in text_string_to_metric_families(body):
        if family.name == "edge_agent_rule_state":
            for sample in family.samples:
                if sample.labels.get("rule") == rule and sample.value == 1:
                    return sample.labels.get("state")
    return None


def _values(spec: RuleSpec, bounds: tuple[float, float]) -> list[float]:
    count = int(round((bounds[1] - bounds[0]) / spec.step))
    return [round(bounds[0] + i * spec.step, 2) for i in range(count + 1)]


class Workload:
    def __init__(self, estate: Estate, seed: int, used: set[str]) -> None:
        self.estate = estate
        self.episodes: list[Episode] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._rng = {site: random.Random(f"{seed}-{site}") for site in RULES}
        # Values earlier phases on this estate used stay used: one value, one episode.
        self._used = used
        self._unused = {
            site: tuple(
                [v for v in _values(spec, bounds) if f"{site} {v:.2f}" not in used]
                for bounds in (spec.medium, spec.high)
            )
            for site, spec in RULES.items()
        }

    def start(self) -> None:
        for site in RULES:
            thread = threading.Thread(target=self._drive, args=(site,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Finish the episode in progress (the value back to normal) and stop."""
        self._stop.set()
        for thread in self._threads:
            thread.join(MAX_HOLD_S * 2 + 30)

    def _pick(self, site: str) -> tuple[float, str] | None:
        """A value no episode of the site used (the checker finds episodes by value)."""
        rng = self._rng[site]
        medium, high = self._unused[site]
        pool, priority = (high, "HIGH") if rng.random() < 0.3 else (medium, "MEDIUM")
        if not pool:
            pool, priority = (medium, "MEDIUM") if pool is high else (high, "HIGH")
        if not pool:
            return None
        value = pool.pop(rng.randrange(len(pool)))
        self._used.add(f"{site} {value:.2f}")
        return value, priority

    def _state(self, site: str) -> str | None:
        agent = self.estate.agents[site]
        return rule_state(agent.process.health_port, RULES[site].rule)

    def _wait_state(self, site: str, states: set[str], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._state(site) in states:
                return True
            time.sleep(0.25)
        return False

    def _drive(self, site: str) -> None:
        spec = RULES[site]
        rng = self._rng[site]
        n = 0
        while not self._stop.is_set():
            # Normal long enough for the rule to be NORMAL again (off-delay, restarts).
            if not self._wait_state(site, {"NORMAL"}, MAX_HOLD_S):
                continue  # still in the last episode (a down agent never saw it clear)
            time.sleep(spec.off_delay_s + rng.uniform(0.5, 2.0))
            if self._stop.is_set():
                return
            picked = self._pick(site)
            if picked is None:
                return  # every value used: this site's workload is done
            value, priority = picked
            episode = Episode(site, n, value, priority, time.monotonic())
            n += 1
            with self._lock:
                self.episodes.append(episode)
            self.estate.set_value(site, value)
            time.sleep(spec.on_delay_s + 0.5)
            if self._wait_state(site, {"ACTIVE", "CLEARING"}, MAX_HOLD_S):
                episode.seen_at = time.monotonic()
                if rng.random() < 0.3:
                    # Into the deadband and back: the same episode, no second order.
                    self.estate.set_value(site, round(spec.limit - spec.deadband / 2, 2))
                    time.sleep(spec.off_delay_s + 1.0)
                    self.estate.set_value(site, value)
                    episode.wiggled = True
                time.sleep(rng.uniform(0.5, 2.0))
            self.estate.set_value(site, spec.normal)
            episode.lowered_at = time.monotonic()

    def snapshot(self) -> list[Episode]:
        with self._lock:
            return list(self.episodes)
