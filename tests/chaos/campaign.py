"""A fault campaign: the estate, the workload, the nemesis for a while, healing, the checker.

    python -m tests.chaos.campaign --seed 7 --seconds 60
    python -m tests.chaos.campaign --seeds 1,2,3 --seconds 60     # one estate, three phases

Exit 0 when every episode became exactly one work order; else 1, with the seed, the
timeline of faults and episodes, and the first broken episode."""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.chaos import checker
from tests.chaos.estate import Estate, wait
from tests.chaos.nemesis import KINDS, Fault, Nemesis
from tests.chaos.workload import Episode, Workload

CONVERGE_S = 120.0
"""After healing, the bound within which every episode must have its work order."""


@dataclass
class Phase:
    seed: int
    faults: list[Fault] = field(default_factory=list)
    episodes: list[Episode] = field(default_factory=list)
    converge_s: float | None = None
    verdict: checker.Verdict | None = None


class DepthSampler:
    """The peak outbox depth of any agent, sampled every second."""

    def __init__(self, estate: Estate) -> None:
        self.estate = estate
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.peak = max([self.peak, *checker.outbox_depths(self.estate).values()])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


class Technician:
    """Closes every work order a few seconds after it appears, as a technician would: the
    hub learns it from MaintainX's webhook, and the rule's next episode gets a new one."""

    def __init__(self, estate: Estate) -> None:
        self.estate = estate
        self.closed: set[int] = set()
        self._stop = threading.Event()
        self._first_seen: dict[int, float] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            now = time.monotonic()
            for wo in checker.ours(self.estate):
                seen = self._first_seen.setdefault(wo["id"], now)
                if wo["id"] not in self.closed and now - seen > 2.0:
                    try:
                        self.estate.emulator.change_status(wo["id"], "DONE")
                    except Exception:
                        continue  # the emulator restarting: next round
                    self.closed.add(wo["id"])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def keep_running(estate: Estate) -> bool:
    """Restart what exited by itself after healing; each such exit is a finding."""
    for name, agent in estate.agents.items():
        process = agent.process.process
        if process is not None and process.poll() is not None:
            estate.exits.append(f"{name} exited by itself (code {process.returncode})")
            agent.start()
    for name, hub in estate.hubs.items():
        if hub.process is not None and hub.process.poll() is not None:
            estate.exits.append(f"{name} exited by itself (code {hub.process.returncode})")
            hub.start()
    return True


def converge(estate: Estate, episodes: list[Episode]) -> float | None:
    """Seconds until every seen episode has an order and nothing waits anywhere."""
    started = time.monotonic()

    def settled() -> bool:
        return (
            checker.missing_orders(estate, episodes) == 0
            and not any(checker.outbox_depths(estate).values())
            and checker.hub_pending(estate) == 0
        )

    if not wait(lambda: keep_running(estate) and settled(), CONVERGE_S, 0.5):
        return None
    return time.monotonic() - started


def run_phase(
    estate: Estate,
    seed: int,
    seconds: float,
    before: list[Episode],
    log: list[str],
    only: tuple[str, ...] = (),
) -> Phase:
    phase = Phase(seed)
    workload = Workload(estate, seed, estate.used_values)
    nemesis = Nemesis(estate, seed, only=only)
    workload.start()
    nemesis.run_for(seconds)
    nemesis.join()
    nemesis.heal()
    workload.stop()
    phase.faults, phase.episodes = nemesis.faults, workload.snapshot()
    if nemesis.error is not None:
        log.append(f"seed {seed}: the nemesis failed: {nemesis.error!r}")
    episodes = before + phase.episodes
    phase.converge_s = converge(estate, episodes)
    time.sleep(2.0)  # a late duplicate would show up now
    phase.verdict = checker.check(estate, episodes)
    phase.verdict.problems.extend(estate.exits)
    estate.exits.clear()
    if phase.converge_s is None:
        phase.verdict.problems.insert(0, f"no convergence within {CONVERGE_S:.0f} s of healing")
    return phase


def timeline(phase: Phase, t0: float) -> list[str]:
    rows: list[tuple[float, str]] = []
    for f in phase.faults:
        end = f"-> {f.end - t0:7.1f}" if f.end else ""
        rows.append(
            (f.start, f"{f.start - t0:7.1f} {end:10} FAULT   {f.kind} {f.target} {f.detail}")
        )
    for e in phase.episodes:
        seen = f"seen +{e.seen_at - e.raised_at:.1f}s" if e.seen_at else "NOT SEEN (no activation)"
        rows.append(
            (
                e.raised_at,
                f"{e.raised_at - t0:7.1f} {'':10} EPISODE {e.site} #{e.n} "
                f"value {e.value} {e.priority} {seen}",
            )
        )
    return [text for _, text in sorted(rows)]


def dead_letters(estate: Estate) -> list[str]:
    """Every agent's dead letters with their reasons, and the log lines (hubs and agents)
    that say why: printed, since CI keeps no work folder."""
    lines: list[str] = []
    for site, agent in estate.agents.items():
        done = subprocess.run(
            [sys.executable, "-m", "edge_agent", "outbox", str(agent.process.site), "dead"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if "no dead letters" not in done.stdout.lower():
            lines += [f"{site}: {line}" for line in (done.stdout + done.stderr).splitlines()]
    logs = {name: hub.log for name, hub in estate.hubs.items()}
    logs.update({site: agent.process.log_path for site, agent in estate.agents.items()})
    for name, path in logs.items():
        if path.exists():
            lines += [
                f"{name}: {line[:600]}"
                for line in path.read_text(errors="replace").splitlines()
                if any(words in line for words in WHY_DEAD)
            ]
    return lines[:60]


WHY_DEAD = (
    "Alert message rejected",
    "Poison message",
    "refused an alert for good",
    "moved to the dead letters",
)


def dump(estate: Estate, workdir: Path) -> None:
    """What a failure needs to be understood: the work orders and every process' metrics."""
    (workdir / "work_orders.json").write_text(
        json.dumps(checker.ours(estate), indent=1, default=str)
    )
    ports = {n: a.process.health_port for n, a in estate.agents.items()}
    ports.update({n: h.health_port for n, h in estate.hubs.items()})
    for name, port in ports.items():
        sampled = checker.metrics(port)
        (workdir / f"{name}.metrics").write_text(
            "\n".join(f"{k[0]} {dict(k[1])} {v}" for k, v in sorted(sampled.items()))
        )


def report(estate: Estate, phases: list[Phase], peak: float, elapsed: float) -> str:
    faults = Counter(f.kind for p in phases for f in p.faults)
    episodes = [e for p in phases for e in p.episodes]
    seen = sum(1 for e in episodes if e.seen)
    lines = [
        f"chaos campaign: seeds {[p.seed for p in phases]}, {elapsed:.0f} s in all, "
        f"hub store {estate.store}",
        f"episodes: {len(episodes)} caused, {seen} activated "
        f"({Counter(e.site for e in episodes if e.seen)}), {len(episodes) - seen} never activated",
        f"faults: {sum(faults.values())} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(faults.items()))})",
        f"work orders: {len(checker.ours(estate))}",
        "time to converge after healing: "
        + ", ".join(
            f"{p.converge_s:.1f} s" if p.converge_s is not None else "NONE" for p in phases
        ),
        f"peak outbox depth: {peak:.0f}",
        f"re-activations commented on an open work order: "
        f"{sum(p.verdict.commented for p in phases if p.verdict)}, "
        f"of which repeated on the same work order: {len(checker.DUPLICATE_COMMENTS)}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, help="one phase with this seed")
    parser.add_argument("--seeds", help="comma-separated seeds, one phase each, one estate")
    parser.add_argument("--seconds", type=float, default=60.0, help="faults per phase")
    parser.add_argument("--workdir", type=Path, help="keep logs here (default: a temp folder)")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated fault kinds to draw from (default all): " + ", ".join(KINDS),
    )
    parser.add_argument(
        "--opcua",
        choices=["poll", "subscribe"],
        default="poll",
        help="site-b's OPC UA connection mode (default poll)",
    )
    args = parser.parse_args(argv)
    only = tuple(kind for kind in args.only.split(",") if kind)
    unknown = [kind for kind in only if kind not in KINDS or not KINDS[kind]]
    if unknown:
        parser.error(f"--only: unknown or unavailable fault kind(s): {', '.join(unknown)}")
    if args.seeds:
        seeds = [int(s) for s in args.seeds.split(",")]
    else:
        seeds = [args.seed if args.seed is not None else random.randrange(1 << 31)]
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        return run(
            seeds,
            args.seconds,
            args.workdir or Path(tmp),
            keep=args.workdir is not None,
            only=only,
            opcua_mode=args.opcua,
        )


def run(
    seeds: list[int],
    seconds: float,
    workdir: Path,
    keep: bool = False,
    only: tuple[str, ...] = (),
    opcua_mode: str = "poll",
) -> int:
    print(f"chaos: seeds {seeds}, {seconds:.0f} s of faults each (reproduce: --seed S)", flush=True)
    started = time.monotonic()
    estate = Estate(workdir, opcua_mode=opcua_mode)
    phases: list[Phase] = []
    log: list[str] = []
    sampler: DepthSampler | None = None
    technician: Technician | None = None
    try:
        estate.start()
        print(
            f"chaos: estate up in {time.monotonic() - started:.1f} s (hub store {estate.store})",
            flush=True,
        )
        sampler = DepthSampler(estate)
        technician = Technician(estate)
        for seed in seeds:
            t0 = time.monotonic()
            before = [e for p in phases for e in p.episodes]
            phase = run_phase(estate, seed, seconds, before, log, only)
            phases.append(phase)
            verdict = phase.verdict
            assert verdict is not None
            if not verdict.ok:
                print(f"\nCHAOS FAILURE, seed {seed} (reproduce: --seed {seed}); logs in {workdir}")
                print("\n".join(timeline(phase, t0)))
                print("problems:\n  " + "\n  ".join(verdict.problems[:40]))
                if any("dead letters" in problem for problem in verdict.problems):
                    print("dead letters:\n  " + "\n  ".join(dead_letters(estate)))
                dump(estate, workdir)
                if verdict.first_broken is not None:
                    e = verdict.first_broken
                    print(
                        f"first broken episode: {e.site} #{e.n} value {e.value} {e.priority} "
                        f"raised at {e.raised_at - t0:.1f} s"
                    )
                break
            print(
                f"chaos: seed {seed} ok: {verdict.matched} episodes, each one work order, "
                f"{len(phase.faults)} faults, converged in {phase.converge_s:.1f} s",
                flush=True,
            )
    finally:
        if sampler is not None:
            sampler.stop()
        if technician is not None:
            technician.stop()
        print(report(estate, phases, sampler.peak if sampler else 0.0, time.monotonic() - started))
        for line in log:
            print(line)
        estate.close(keep_schema=keep and not all(p.verdict and p.verdict.ok for p in phases))
    ok = (
        bool(phases)
        and len(phases) == len(seeds)
        and all(p.verdict and p.verdict.ok for p in phases)
    )
    return 0 if ok and not log else 1


if __name__ == "__main__":
    sys.exit(main())
