"""The agent beside the bare library: CPU and memory of polling the same Modbus registers.

One Modbus simulator (`edge-agent simulate modbus`, its own process) serves two pollers (three
with ``--floor``) that take turns, window after window in one run, so that all see the same
machine load:

- the agent (`edge-agent run`): 100 holding registers as 100 uint16 sensors, 100 threshold
  rules that never trip, MaintainX forwarding (nothing to send);
- the bare pymodbus poller (``bench/bare_modbus_poller.py``): one request for the same 100
  registers on the same schedule, nothing else.

Each window starts the process, lets it warm up, then takes its CPU (user + system, from
/proc, in % of one core) and RSS over the window. Prints the medians per poll interval and
the ratio agent / bare. Goal (issue 16): at 10 ms the agent's CPU ≤ 1.6× the bare poller's.

    .venv/bin/python bench/peers.py [--rates 10,100] [--rounds 3] [--window 15]

``--other-tree DIR`` measures a second checkout's agent in the same rounds; with
``--together`` the two agents and the bare poller run at once in each window instead of
one after the other (pairs that share the machine's load second by second: on a shared
machine the windows of one round differ by more than two trees do).

``--floor`` adds a third poller to each round: the bare poller plus the least work that
any agent with these rules must do with a poll (``bench/floor_modbus_poller.py``: a reading
record per register, kept as the latest, compared with its limit), and prints the floor
against the bare poller and the agent against the floor. The order of the windows turns by
one each round (a load that drifts over a round favours no poller). Not with ``--together``
or ``--stages``.

``--stages`` prices each stage of the agent live: the agent as it is and one agent per
stage with that stage taken out (see ``STAGES``) poll at once beside the bare poller, and
each stage's price is the whole agent's CPU minus that agent's, round by round. The
variants are scratch folders that borrow this checkout's package and virtualenv and add a
``sitecustomize`` that replaces the stage (the checkout itself is not changed). A variant
does less than the agent must: it prices a stage, it is not a candidate.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import agent as agent_bench  # noqa: E402
from agent import CLK_TCK, PAGE, Agent  # noqa: E402
from ports import free_port  # noqa: E402
from sources_modbus import modbus_simulator  # noqa: E402

REGISTERS = 100
WARMUP_S = 5.0


class PollingAgent(Agent):
    """An ``Agent`` taken as started once its Modbus connection is up.

    ``/readyz`` also wants the forwarder connected, and this bench points MaintainX at a
    closed port (nothing trips, nothing is sent): once the forwarder's first attempt has
    failed, ``/readyz`` says 503 for good, and an agent slow to start on a loaded machine
    never said 200 (rounds lost to "the agent did not become ready"). Here any answer of
    ``/readyz`` whose sources are all connected will do."""

    def started(self) -> bool:
        answer = self.readyz()
        if answer is None:
            return False  # not listening yet
        try:
            sources = json.loads(answer[1]).get("sources") or {}
        except ValueError:
            return False
        return bool(sources) and all(state.get("connected") for state in sources.values())


# --stages: the agent with one stage taken out, as the ``sitecustomize`` of a scratch folder.
STAGES: dict[str, tuple[str, str]] = {
    "whole agent": ("nothing taken out", ""),
    "after the source": (
        "the sink returns at once: source-time check, history filter, rules loop, engine",
        "from edge_agent.service import rules_loop\n"
        "async def sink(self, readings):\n"
        "    return None\n"
        "rules_loop.RulesLoop.sink = sink\n",
    ),
    "rule engine": (
        "RuleEngine.feed returns no events at once",
        "from edge_agent.rules import engine\n"
        "engine.RuleEngine.feed = lambda self, reading, received_ns=None: []\n",
    ),
    "history filter": (
        "HistoryRecorder.offer returns at once",
        "from edge_agent.history import recorder\n"
        "recorder.HistoryRecorder.offer = lambda self, readings, wall_ns: None\n",
    ),
    "source time": (
        "SourceTimeCheck.check returns at once",
        "from edge_agent.service import agent_clock\n"
        "agent_clock.SourceTimeCheck.check = lambda self, readings, wall_ns: None\n",
    ),
    "decode": (
        "a block's first readings put in the map again (no unpacking, no new readings)",
        "from edge_agent.sources.modbus import block_decode\n"
        "decode_into = block_decode.BlockDecoder.decode_into\n"
        "first = {}\n"
        "def again(self, data, time_ns, out):\n"
        "    if id(self) not in first:\n"
        "        first[id(self)] = {}\n"
        "        decode_into(self, data, time_ns, first[id(self)])\n"
        "    out.update(first[id(self)])\n"
        "block_decode.BlockDecoder.decode_into = again\n",
    ),
    "source cycle and decode": (
        "poll_once sends the one request itself and returns the first good cycle's list",
        "from edge_agent.sources.modbus import source\n"
        "poll_once = source.ModbusSource.poll_once\n"
        "async def bare(self):\n"
        "    kept = getattr(self, 'kept', None)\n"
        "    if kept is None or self._client is None:\n"
        "        out = await poll_once(self)\n"
        "        if all(r.is_good for r in out):\n"
        "            self.kept = out\n"
        "        return out\n"
        f"    await self._client.read_holding_registers(0, count={REGISTERS}, device_id=1)\n"
        "    return kept\n"
        "source.ModbusSource.poll_once = bare\n",
    ),
}


def site(rate_ms: int, modbus_port: int, state: Path) -> dict[str, Any]:
    """The agent's site: the same registers as the bare poller, one rule per sensor."""
    sensors = {
        f"r{i}": {
            "connection": "plc",
            "register": {"table": "holding", "address": i, "type": "uint16"},
        }
        for i in range(REGISTERS)
    }
    rules = [
        {"id": f"r{i}-high", "asset": "A", "sensor": f"r{i}", "high": {"limit": 70000}}
        for i in range(REGISTERS)
    ]
    return {
        "version": 1,
        "site": {"id": "peers"},
        "connections": {
            "plc": {
                "protocol": "modbus-tcp",
                "host": "127.0.0.1",
                "port": modbus_port,
                "poll": f"{rate_ms}ms",
                "timeout": "1s",
            }
        },
        "assets": {"A": {"maintainx_id": 1, "name": "A"}},
        "sensors": sensors,
        "rules": rules,
        "forwarding": {
            "mode": "maintainx",
            # Nothing trips, so nothing is ever sent here.
            "maintainx": {"base_url": "http://127.0.0.1:9/v1", "api_key": "${BENCH_MX_KEY}"},
        },
        "storage": {"path": str(state)},
        "health": {"listen": f"127.0.0.1:{free_port()}"},
        "logging": {"level": "warning"},
    }


# ---------------------------------------------------------------- measuring


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid: int) -> float:
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * PAGE / 2**20


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a process that exited stays a zombie until it is waited for,
    and its /proc figures stay readable: a window over it would measure nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def window(pid: int, seconds: float) -> tuple[float, float]:
    """CPU % of one core over ``seconds`` after the warm-up, and the RSS at the end."""
    time.sleep(WARMUP_S)
    cpu0, wall0 = cpu_s(pid), time.perf_counter()
    time.sleep(seconds)
    cpu1, wall1 = cpu_s(pid), time.perf_counter()
    if not alive(pid):
        raise RuntimeError(f"process {pid} exited during its window: its figures are not a poll")
    cpu = 100 * (cpu1 - cpu0) / (wall1 - wall0)
    if cpu <= 0:
        raise RuntimeError(
            f"process {pid} used no CPU tick in {seconds:.0f} s: the window is too short"
        )
    return cpu, rss_mib(pid)


def measure_agent(
    rate_ms: int, port: int, seconds: float, workdir: Path, tree: Path | None = None
) -> tuple[float, float]:
    """The agent of this checkout, or of another one (``tree``: before/after figures)."""
    run_dir = Path(tempfile.mkdtemp(dir=workdir))
    # The tree's own interpreter, from inside the tree (``-m`` puts the working directory
    # first on sys.path). ``Agent``'s default tree is this checkout: without passing
    # ``tree`` both columns measured this checkout.
    agent = PollingAgent(site(rate_ms, port, run_dir / "state"), run_dir, tree or agent_bench.REPO)
    agent.start()
    try:
        assert agent.process is not None
        return window(agent.process.pid, seconds)
    finally:
        agent.stop()


def measure_bare(
    rate_ms: int, port: int, seconds: float, script: str = "bare_modbus_poller.py"
) -> tuple[float, float]:
    """The bare poller, or (``script``) the floor poller of ``--floor``."""
    process = subprocess.Popen(
        [
            sys.executable,
            str(BENCH_DIR / script),
            str(port),
            str(rate_ms),
            str(REGISTERS),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "polling":
            raise RuntimeError(f"{script} did not start")
        return window(process.pid, seconds)
    finally:
        process.terminate()
        process.wait(10)


def measure_together(
    rate_ms: int, port: int, seconds: float, workdir: Path, other_tree: Path
) -> tuple[float, float, float]:
    """This checkout's agent, the other tree's and the bare poller polling at once: one
    window for the three, so that each sees the same load (the machine's load moves from
    one 15 s window to the next by more than the difference between two trees)."""
    agents: list[Agent] = []
    bare = subprocess.Popen(
        [sys.executable, str(BENCH_DIR / "bare_modbus_poller.py"), str(port), str(rate_ms)]
        + [str(REGISTERS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for tree in (agent_bench.REPO, other_tree):
            # Each site picks its free ports once the agent before has bound its own.
            run_dir = Path(tempfile.mkdtemp(dir=workdir))
            agents.append(PollingAgent(site(rate_ms, port, run_dir / "state"), run_dir, tree))
            agents[-1].start()
        assert bare.stdout is not None
        if bare.stdout.readline().strip() != "polling":
            raise RuntimeError("the bare poller did not start")
        pids = [a.process.pid for a in agents if a.process is not None] + [bare.pid]
        time.sleep(WARMUP_S)
        cpu0, wall0 = [cpu_s(pid) for pid in pids], time.perf_counter()
        time.sleep(seconds)
        cpu1, wall1 = [cpu_s(pid) for pid in pids], time.perf_counter()
        mine, other, alone = (100 * (b - a) / (wall1 - wall0) for a, b in zip(cpu0, cpu1))
        return mine, other, alone
    finally:
        for agent in agents:
            agent.stop()
        bare.terminate()
        bare.wait(10)


def together(args: argparse.Namespace, rates: list[int]) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp,
        modbus_simulator(REGISTERS) as port,
    ):
        for rate_ms in rates:
            runs = [
                measure_together(rate_ms, port, args.window, Path(tmp), args.other_tree)
                for _ in range(args.rounds)
            ]
            print(f"every {rate_ms:>4} ms, all three at once (this / other / bare, % of a core):")
            for mine, other, alone in runs:
                print(
                    f"    {mine:5.2f} / {other:5.2f} / {alone:5.2f} -> {mine / alone:.2f}x and "
                    f"{other / alone:.2f}x the bare poller, this / other {mine / other:.3f}"
                )
            print(
                "    median ratio this / other: "
                f"{statistics.median(m / o for m, o, _ in runs):.3f}, to the bare poller: "
                f"{statistics.median(m / b for m, _, b in runs):.2f}x (this), "
                f"{statistics.median(o / b for _, o, b in runs):.2f}x (other)"
            )


def stage_trees(workdir: Path) -> dict[str, Path]:
    """One scratch folder per stage: this checkout's package and virtualenv, and the
    ``sitecustomize`` that takes the stage out (``-m edge_agent`` runs from the folder,
    which ``Agent`` also puts on PYTHONPATH)."""
    trees: dict[str, Path] = {}
    for index, (name, (_, patch)) in enumerate(STAGES.items()):
        tree = workdir / f"stage-{index}"
        tree.mkdir()
        (tree / "edge_agent").symlink_to(agent_bench.REPO / "edge_agent")
        if (agent_bench.REPO / ".venv").exists():
            (tree / ".venv").symlink_to(agent_bench.REPO / ".venv")
        (tree / "sitecustomize.py").write_text(patch)
        # Python reports a failing sitecustomize and starts anyway: the variant would be the
        # whole agent under another name (a stage renamed since). Import it here, loudly.
        python = tree / ".venv" / "bin" / "python"
        subprocess.run(
            [str(python) if python.exists() else sys.executable, "-c", "import sitecustomize"],
            cwd=tree,
            env={**os.environ, "PYTHONPATH": str(tree)},
            check=True,
        )
        trees[name] = tree
    return trees


def stages(args: argparse.Namespace, rate_ms: int) -> None:
    """Every variant of ``STAGES`` and the bare poller at once, ``args.rounds`` windows."""
    cpu: dict[str, list[float]] = {name: [] for name in [*STAGES, "bare pymodbus"]}
    with (
        tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp,
        modbus_simulator(REGISTERS) as port,
    ):
        trees = stage_trees(Path(tmp))
        for round_index in range(args.rounds):
            # Each round starts the variants in another order (start-up is not measured,
            # but the first one started has warmed up longest).
            names = list(trees)
            names = names[round_index % len(names) :] + names[: round_index % len(names)]
            bare = subprocess.Popen(
                [sys.executable, str(BENCH_DIR / "bare_modbus_poller.py"), str(port)]
                + [str(rate_ms), str(REGISTERS)],
                stdout=subprocess.PIPE,
                text=True,
            )
            agents: dict[str, Agent] = {}
            try:
                for name in names:
                    run_dir = Path(tempfile.mkdtemp(dir=tmp))
                    agents[name] = PollingAgent(
                        site(rate_ms, port, run_dir / "state"), run_dir, trees[name]
                    )
                    agents[name].start()
                assert bare.stdout is not None
                if bare.stdout.readline().strip() != "polling":
                    raise RuntimeError("the bare poller did not start")
                pids = {n: a.process.pid for n, a in agents.items() if a.process is not None}
                pids["bare pymodbus"] = bare.pid
                time.sleep(WARMUP_S)
                cpu0, wall0 = {n: cpu_s(p) for n, p in pids.items()}, time.perf_counter()
                time.sleep(args.window)
                cpu1, wall1 = {n: cpu_s(p) for n, p in pids.items()}, time.perf_counter()
            except RuntimeError as exc:  # a variant that never became ready: round lost
                print(f"round {round_index + 1} not measured: {exc}", flush=True)
                continue
            finally:
                for agent in agents.values():
                    agent.stop()
                bare.terminate()
                bare.wait(10)
            for name, pid in pids.items():
                cpu[name].append(100 * (cpu1[name] - cpu0[name]) / (wall1 - wall0))
            print(
                f"round {round_index + 1}: "
                + ", ".join(f"{name} {figures[-1]:.2f}" for name, figures in cpu.items()),
                flush=True,
            )
    whole = cpu["whole agent"]
    if not whole:
        return
    print(
        f"every {rate_ms} ms, {len(whole)} rounds, all at once: % of a core (median); a "
        "stage's price is the whole agent's CPU minus the variant's, per round (median; "
        "share of the whole agent)"
    )
    for name, figures in cpu.items():
        prices = [w - f for w, f in zip(whole, figures, strict=True)]
        shares = [p / w for p, w in zip(prices, whole, strict=True)]
        what = STAGES[name][0] if name in STAGES else "the same request, nothing else"
        print(
            f"  {name:24s} {statistics.median(figures):5.2f} %   price "
            f"{', '.join(f'{p:+.2f}' for p in prices)} (median {statistics.median(prices):+.2f}"
            f" point, {100 * statistics.median(shares):.1f} %)   [{what}]"
        )


def per_round(figures: dict[str, list[tuple[float, float]]], top: str, bottom: str) -> str:
    """One poller's CPU over another's, round by round (a round's windows share its load)."""
    pairs = zip(figures[top], figures[bottom], strict=True)
    return ", ".join(f"{t[0] / b[0]:.2f}" for t, b in pairs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", default="10,100", help="poll intervals in ms")
    parser.add_argument("--rounds", type=int, default=3, help="windows of each, alternating")
    parser.add_argument("--window", type=float, default=15.0, help="seconds measured")
    parser.add_argument(
        "--other-tree",
        type=Path,
        help="another checkout of edge-agent (e.g. main) measured in the same rounds",
    )
    parser.add_argument(
        "--together",
        action="store_true",
        help="with --other-tree: run both agents and the bare poller at once in each window",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also measure the floor poller (the bare poller plus the least work of the job)",
    )
    parser.add_argument(
        "--stages",
        action="store_true",
        help="price each stage live: the agent with one stage out per variant, all at once",
    )
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    os.environ["BENCH_MX_KEY"] = "peers-bench-key"
    if args.floor and (args.stages or args.together):
        parser.error("--floor runs in the alternating windows: not with --stages or --together")
    if args.stages:
        for rate_ms in rates:
            stages(args, rate_ms)
        return 0
    if args.together:
        if not args.other_tree:
            parser.error("--together needs --other-tree")
        together(args, rates)
        return 0
    print(
        f"agent beside the bare pymodbus poller: {REGISTERS} holding registers, "
        f"{REGISTERS} rules that never trip, {args.rounds} alternating windows of "
        f"{args.window:.0f} s after {WARMUP_S:.0f} s warm-up (CPU in % of one core)"
    )
    with (
        tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp,
        modbus_simulator(REGISTERS) as port,
    ):
        for rate_ms in rates:
            figures: dict[str, list[tuple[float, float]]] = {"agent": [], "bare": []}
            if args.other_tree:
                figures["other"] = []
            if args.floor:
                figures["floor"] = []
            measures: dict[str, Callable[[], tuple[float, float]]] = {
                "agent": lambda: measure_agent(rate_ms, port, args.window, Path(tmp)),
                "bare": lambda: measure_bare(rate_ms, port, args.window),
            }
            if args.floor:
                measures["floor"] = lambda: measure_bare(
                    rate_ms, port, args.window, "floor_modbus_poller.py"
                )
            if args.other_tree:
                measures["other"] = lambda: measure_agent(
                    rate_ms, port, args.window, Path(tmp), args.other_tree
                )
            order = list(measures)
            for round_index in range(args.rounds):
                # With --floor the order turns each round; without, it is as it always was.
                turn = round_index % len(order) if args.floor else 0
                for name in order[turn:] + order[:turn]:
                    figures[name].append(measures[name]())
            cpu = {k: statistics.median(c for c, _ in v) for k, v in figures.items()}
            rss = {k: statistics.median(r for _, r in v) for k, v in figures.items()}
            print(
                f"every {rate_ms:>4} ms: agent {cpu['agent']:5.2f} % / {rss['agent']:5.1f} MiB, "
                f"bare pymodbus {cpu['bare']:5.2f} % / {rss['bare']:5.1f} MiB -> CPU ratio "
                f"{cpu['agent'] / cpu['bare']:.2f}x (per round: "
                f"{per_round(figures, 'agent', 'bare')})"
                + (" (goal <= 1.6x)" if rate_ms == 10 else "")
            )
            if args.other_tree:
                # Each round's own pair: the bare poller's window sits between the two
                # agents' windows (without --floor), so a round's ratios share its load.
                print(
                    f"    other tree: agent {cpu['other']:5.2f} % / {rss['other']:5.1f} MiB "
                    f"-> CPU ratio {cpu['other'] / cpu['bare']:.2f}x the bare poller (per round: "
                    f"{per_round(figures, 'other', 'bare')})"
                )
            if args.floor:
                # Per-round pairs; the windows' order turned each round (above).
                print(
                    f"    floor (bare + the job's least work): {cpu['floor']:5.2f} % / "
                    f"{rss['floor']:5.1f} MiB -> {cpu['floor'] / cpu['bare']:.2f}x the bare poller "
                    f"(per round: {per_round(figures, 'floor', 'bare')}); the agent "
                    f"{cpu['agent'] / cpu['floor']:.2f}x the floor (per round: "
                    f"{per_round(figures, 'agent', 'floor')})"
                )
            for name, runs in figures.items():
                print(f"    {name:5s} windows: " + ", ".join(f"{c:.2f} %" for c, _ in runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
