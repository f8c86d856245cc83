"""The nemesis: a random schedule of faults from a seed, applied to the estate one after
another (each healed before the next starts), every one written to the timeline."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.chaos.estate import LIBFAKETIME, Estate

# kind -> weight.
KINDS: dict[str, int] = {
    "kill_agent": 3,
    "kill_hub": 3,
    "kill_broker": 2,
    "restart_emulator": 1,
    "pause": 3,
    "partition": 4,
    "reset": 2,
    "delay": 2,
    "mx_429": 2,
    "mx_5xx": 2,
    "mx_timeout_after_commit": 2,
    "mx_refused_key": 1,
    "clock_step": 1 if LIBFAKETIME else 0,
    "full_cap": 1,
}


# The proxy an agent's alerts leave through.
OUTBOUND: dict[str, str] = {"site-a": "mqtt-a", "site-b": "mqtt-b", "site-c": "mx-c"}


@dataclass
class Fault:
    kind: str
    target: str
    detail: str
    start: float  # monotonic
    end: float | None = None


@dataclass
class Nemesis:
    estate: Estate
    seed: int
    faults: list[Fault] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    error: BaseException | None = None
    refused_keys: bool = False
    only: tuple[str, ...] = ()  # fault kinds to draw from (all of KINDS when empty)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def run_for(self, seconds: float) -> None:
        self._thread = threading.Thread(target=self._run, args=(seconds,), daemon=True)
        self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def _run(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end:
                time.sleep(self.rng.uniform(0.5, 3.0))
                if time.monotonic() >= end:
                    break
                kinds = [
                    k for k, w in KINDS.items() for _ in range(w) if not self.only or k in self.only
                ]
                kind = self.rng.choice(kinds)
                getattr(self, f"_{kind}")(
                    min(self.rng.uniform(2, 12), max(end - time.monotonic(), 1))
                )
        except BaseException as exc:  # reported by the campaign, never silent
            self.error = exc

    def _log(self, kind: str, target: str, detail: str = "") -> Fault:
        fault = Fault(kind, target, detail, time.monotonic())
        self.faults.append(fault)
        return fault

    # ------------------------------------------------------------------ faults

    def _kill_agent(self, seconds: float) -> None:
        site = self.rng.choice(sorted(self.estate.agents))
        fault = self._log("kill_agent", site, f"down {seconds:.1f}s")
        agent = self.estate.agents[site]
        agent.process.kill()
        time.sleep(seconds)
        agent.start()
        fault.end = time.monotonic()

    def _kill_hub(self, seconds: float) -> None:
        name = self.rng.choice(sorted(self.estate.hubs))
        fault = self._log("kill_hub", name, f"down {seconds:.1f}s")
        hub = self.estate.hubs[name]
        hub.kill()
        time.sleep(seconds)
        hub.start()
        fault.end = time.monotonic()

    def _kill_broker(self, seconds: float) -> None:
        keep = self.rng.random() < 0.5
        broker = self.estate.broker
        assert broker is not None
        fault = self._log("kill_broker", "mosquitto", f"persistence {'kept' if keep else 'lost'}")
        broker.kill()
        if not keep:
            (broker.workdir / "mosquitto.db").unlink(missing_ok=True)
        time.sleep(min(seconds, 5))
        broker.start()
        fault.end = time.monotonic()

    def _full_cap(self, seconds: float) -> None:
        """An agent restarted with the smallest cap (1 KB: one alert) and its way out cut, so
        the outbox is full and what it raises meanwhile is held with its rule state; then
        restarted with its own cap and its link back: everything held is delivered."""
        site = self.rng.choice(sorted(self.estate.agents))
        fault = self._log("full_cap", site, f"storage.max_bytes 1KB, link cut, {seconds:.1f}s")
        agent = self.estate.agents[site]
        link = self.estate.proxies[OUTBOUND[site]]
        path = agent.process.site
        normal = path.read_text()
        small = json.loads(normal)
        small["storage"]["max_bytes"] = "1KB"
        agent.process.stop(timeout=20)
        try:
            path.write_text(json.dumps(small, indent=2))
            self.estate.loop.run(lambda: link.set_mode("blackhole"))
            agent.start()
            time.sleep(seconds)
            agent.process.stop(timeout=20)
        finally:
            path.write_text(normal)
            self.estate.loop.run(lambda: link.set_mode("pass"))
            if agent.process.process is None:
                agent.start()
        fault.end = time.monotonic()

    def _restart_emulator(self, seconds: float) -> None:
        fault = self._log("restart_emulator", "maintainx", f"down {min(seconds, 5):.1f}s")
        self.estate.emulator.stop()
        time.sleep(min(seconds, 5))
        self.estate.emulator.start()
        fault.end = time.monotonic()

    def _pause(self, seconds: float) -> None:
        targets: dict[str, Any] = {
            **{s: a.process.process for s, a in self.estate.agents.items()},
            **{n: h.process for n, h in self.estate.hubs.items()},
            "mosquitto": self.estate.broker.process if self.estate.broker else None,
        }
        name = self.rng.choice(sorted(targets))
        process = targets[name]
        fault = self._log("pause", name, f"SIGSTOP {seconds:.1f}s")
        if process is None or process.poll() is not None:
            fault.detail += " (not running)"
            fault.end = time.monotonic()
            return
        process.send_signal(signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            process.send_signal(signal.SIGCONT)
        fault.end = time.monotonic()

    def _partition(self, seconds: float) -> None:
        name = self.rng.choice(sorted(self.estate.proxies))
        mode = self.rng.choice(["blackhole", "cut"])
        fault = self._log("partition", name, f"{mode} {seconds:.1f}s")
        proxy = self.estate.proxies[name]
        self.estate.loop.run(lambda: proxy.set_mode(mode))
        time.sleep(seconds)
        self.estate.loop.run(lambda: proxy.set_mode("pass"))
        fault.end = time.monotonic()

    def _reset(self, seconds: float) -> None:
        name = self.rng.choice(sorted(self.estate.proxies))
        fault = self._log("reset", name, "TCP reset of open connections")
        proxy = self.estate.proxies[name]
        self.estate.loop.run(proxy.reset)
        fault.end = time.monotonic()

    def _delay(self, seconds: float) -> None:
        name = self.rng.choice(sorted(self.estate.proxies))
        delay = self.rng.uniform(0.2, 1.5)
        fault = self._log("delay", name, f"{delay:.2f}s a chunk for {seconds:.1f}s")
        proxy = self.estate.proxies[name]
        self.estate.loop.run(lambda: proxy.set_mode("delay", delay))
        time.sleep(seconds)
        self.estate.loop.run(lambda: proxy.set_mode("pass"))
        fault.end = time.monotonic()

    def _mx_429(self, seconds: float) -> None:
        fault = self._log("mx_429", "maintainx", f"429 for {seconds:.1f}s")
        self.estate.emulator.faults.force_429(seconds)
        time.sleep(seconds)
        fault.end = time.monotonic()

    def _mx_5xx(self, seconds: float) -> None:
        fault = self._log("mx_5xx", "maintainx", f"half answered 500 for {seconds:.1f}s")
        faults = self.estate.emulator.faults
        faults.error_rate = 0.5
        time.sleep(seconds)
        faults.error_rate = 0.0
        fault.end = time.monotonic()

    def _mx_timeout_after_commit(self, seconds: float) -> None:
        fault = self._log(
            "mx_timeout_after_commit", "maintainx", f"half the writes for {seconds:.1f}s"
        )
        faults = self.estate.emulator.faults
        faults.stall_s = 3.0  # above every client's 2 s timeout: the response is lost
        faults.timeout_after_store_rate = 0.5
        time.sleep(seconds)
        faults.timeout_after_store_rate = 0.0
        fault.end = time.monotonic()

    def _mx_refused_key(self, seconds: float) -> None:
        count = self.rng.randint(1, 4)
        fault = self._log("mx_refused_key", "maintainx", f"next {count} requests 401")
        self.estate.emulator.faults.force_status(
            401, {"errors": [{"error": "Unauthorized"}]}, count=count
        )
        time.sleep(seconds)
        self.estate.emulator.faults.reset()  # no 401 left over for the reloaded agent
        self.refused_keys = True
        self.reload_direct_agent()
        fault.end = time.monotonic()

    def reload_direct_agent(self) -> None:
        """The operator fixes the key: a direct agent waits for a reload (by design). Only a
        ready agent gets SIGHUP: before its handler is installed SIGHUP ends the process."""
        if not self.refused_keys:
            return
        agent = self.estate.agents["site-c"]
        try:
            agent.process.wait_serving(60)  # /healthz: running, handlers installed
        except AssertionError:
            return  # not running: it starts with the key anyway
        agent.process.signal(signal.SIGHUP)
        self.refused_keys = False

    def _clock_step(self, seconds: float) -> None:
        site = self.rng.choice(sorted(self.estate.agents))
        step = self.rng.choice(["-1d", "+1d"])
        agent = self.estate.agents[site]
        fault = self._log(
            "clock_step", site, f"restarted at {step}, back to +0 after {seconds:.1f}s"
        )
        agent.clock_file.write_text(f"{step}\n")
        agent.process.kill()
        agent.faked = True
        agent.start()
        time.sleep(seconds)
        agent.clock_file.write_text("+0\n")  # NTP sync: the wall clock jumps back
        fault.end = time.monotonic()

    # ------------------------------------------------------------------ heal

    def heal(self) -> None:
        """Every fault off, every process running."""
        estate = self.estate
        for proxy in estate.proxies.values():
            estate.loop.run(lambda p=proxy: p.set_mode("pass"))
        estate.emulator.faults.reset()
        estate.emulator.start()
        broker = estate.broker
        if broker is not None:
            if broker.process is None:
                broker.start()
            else:
                broker.process.send_signal(signal.SIGCONT)
        for hub in estate.hubs.values():
            if hub.alive():
                assert hub.process is not None
                hub.process.send_signal(signal.SIGCONT)
            else:
                hub.start()
        for agent in estate.agents.values():
            agent.clock_file.write_text("+0\n")
            if agent.process.alive():
                agent.process.signal(signal.SIGCONT)
            else:
                agent.start()
        self.refused_keys = any(f.kind == "mx_refused_key" for f in self.faults)
        self.reload_direct_agent()
