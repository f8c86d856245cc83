"""A small mutation tester for the pure core: how much of each module do its tests pin?

Each mutant is one classic change to one module (a flipped comparison, a constant ±1, a
swapped operator, ``and``/``or``, a dropped ``not``, a ``return None``, a deleted
statement), run against that module's own tests in a throwaway copy of the tree, so an
interrupted run never leaves a mutated file behind. A mutant the tests fail on is killed;
one they pass is a survivor: a missing assertion, or an equivalent mutant listed with its
reason in ``scripts/mutation-equivalents.txt``.

To be fast enough for a full run: the unmutated tests run once, traced, to learn which
tests run each line of the module; a mutant then runs only those tests, fastest first,
stopping at the first failure, plus every test that starts a process (the module may run
there, untraced). A mutant of a line no test runs survives without a run; one of a line run
at import runs every test. Each run is a forked child of this process, which has imported
pytest and the tests' third-party packages once. ``--confirm`` runs every survivor against
all the module's tests (slower; catches a test that reaches the line some other way, e.g.
through a process a fixture started for an earlier test).

    python scripts/mutation.py                      # every module in MODULES, all mutants
    python scripts/mutation.py --sample 40 --seed 1 # a seeded sample per module
    python scripts/mutation.py edge_agent/config/units.py

Not part of ``make test`` (``make mutation``).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import importlib
import importlib.metadata
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from pytest import hookimpl as pytest_hookimpl

TraceFunction = Callable[[FrameType, str, object], Any]
_IMPORT = ""  # the context of lines run while no test runs (imports, collection)

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS_FILE = ROOT / "scripts" / "mutation-equivalents.txt"

# The pure core and the tests that own each module.
MODULES: dict[str, list[str]] = {
    "edge_agent/sources/modbus/decode.py": ["tests/sources_modbus/test_decode.py"],
    "edge_agent/sources/modbus/plan.py": ["tests/sources_modbus/test_plan.py"],
    "edge_agent/sources/opcua/status.py": ["tests/sources_opcua/test_status.py"],
    "edge_agent/rules/compiled.py": ["tests/rules"],
    "edge_agent/rules/conditions.py": ["tests/rules"],
    "edge_agent/rules/deadlines.py": ["tests/rules"],
    "edge_agent/rules/engine.py": ["tests/rules"],
    "edge_agent/rules/guards.py": ["tests/rules"],
    "edge_agent/rules/saving.py": ["tests/rules"],
    "edge_agent/rules/series.py": ["tests/rules"],
    "edge_agent/rules/transitions.py": ["tests/rules"],
    "edge_agent/rules/events.py": ["tests/rules"],
    "edge_agent/rules/render.py": ["tests/rules"],
    "edge_agent/rules/snapshot.py": ["tests/rules"],
    "edge_agent/rules/store.py": ["tests/rules"],
    "edge_agent/rules/faults.py": ["tests/rules"],
    "edge_agent/rules/trace.py": ["tests/rules"],
    "edge_agent/config/units.py": ["tests/config/test_units.py", "tests/config/test_properties.py"],
    "edge_agent/config/checks/common.py": ["tests/config/test_checks.py"],
    "edge_agent/config/checks/references.py": ["tests/config/test_checks.py"],
    "edge_agent/config/checks/registers.py": ["tests/config/test_checks.py"],
    "edge_agent/config/checks/rules.py": ["tests/config/test_checks.py"],
    "edge_agent/config/checks/templates.py": ["tests/config/test_checks.py"],
    "edge_agent/config/checks/connections.py": ["tests/config/test_checks.py"],
    "edge_agent/config/checks/durations.py": ["tests/config/test_checks.py"],
    "edge_agent/config/checks/storage.py": ["tests/config/test_checks.py"],
    "edge_agent/outbox/store.py": [
        "tests/outbox/test_store.py",
        "tests/outbox/test_ordering_model.py",
    ],
    "edge_agent/outbox/core.py": [
        "tests/outbox/test_store.py",
        "tests/outbox/test_ordering_model.py",
    ],
    "edge_agent/outbox/errors.py": [
        "tests/outbox/test_store.py",
        "tests/outbox/test_ordering_model.py",
    ],
    "edge_agent/outbox/enqueue.py": [
        "tests/outbox/test_store.py",
        "tests/outbox/test_ordering_model.py",
    ],
    "edge_agent/outbox/delivery.py": [
        "tests/outbox/test_store.py",
        "tests/outbox/test_ordering_model.py",
    ],
    "edge_agent/outbox/dead_letters.py": [
        "tests/outbox/test_store.py",
        "tests/outbox/test_ordering_model.py",
    ],
    "edge_agent/outbox/awaiting.py": [
        "tests/outbox/test_store.py",
        "tests/outbox/test_ordering_model.py",
    ],
    "edge_agent/outbox/status.py": [
        "tests/outbox/test_store.py",
        "tests/outbox/test_ordering_model.py",
    ],
    "edge_agent/outbox/counts.py": ["tests/outbox/test_store.py"],
    "edge_agent/alerts.py": ["tests/rules"],
    "edge_agent/wire/alert.py": ["tests/hub/test_hub_wire.py"],
}

_COMPARE_SWAP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
_BINOP_SWAP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
    ast.Mod: ast.FloorDiv,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
}


@dataclass(frozen=True)
class Mutant:
    index: int  # the n-th mutation point of the module, in walk order
    line: int
    end_line: int
    operator: str
    description: str


def _is_docstring(node: ast.AST, parent: ast.AST | None) -> bool:
    body = getattr(parent, "body", None)
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        and isinstance(body, list)
        and bool(body)
        and body[0] is node
    )


def _points(tree: ast.Module) -> Iterator[tuple[ast.AST, ast.AST | None, str, str]]:
    """Every mutation point: (node, parent, operator, description)."""
    parents: dict[ast.AST, ast.AST | None] = {}
    for outer in ast.walk(tree):
        for child in ast.iter_child_nodes(outer):
            parents[child] = outer
    # Annotations are never evaluated (``from __future__ import annotations``): a mutant
    # there is equivalent by construction.
    annotations: set[int] = set()
    for node in ast.walk(tree):
        roots: list[ast.AST | None] = []
        if isinstance(node, ast.AnnAssign | ast.arg):
            roots.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            roots.append(node.returns)
        for root in roots:
            if root is not None:
                annotations.update(id(inner) for inner in ast.walk(root))
    for node in ast.walk(tree):
        if id(node) in annotations:
            continue
        parent = parents.get(node)
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in _COMPARE_SWAP:
                    yield node, parent, f"compare:{i}", f"{type(op).__name__} → flipped"
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINOP_SWAP:
            yield node, parent, "binop", f"{type(node.op).__name__} → swapped"
        elif isinstance(node, ast.BoolOp):
            yield node, parent, "boolop", "and ↔ or"
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield node, parent, "not", "not dropped"
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, int | float)
            and not isinstance(node.value, bool)
        ):
            yield node, parent, "constant", f"{node.value!r} → +1"
        elif (
            isinstance(node, ast.Return)
            and node.value is not None
            and not (isinstance(node.value, ast.Constant) and node.value.value is None)
        ):
            yield node, parent, "return", "return None"
        if (
            isinstance(node, ast.Expr | ast.Assign | ast.AugAssign | ast.Raise)
            and isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef | ast.If | ast.For)
            and not _is_docstring(node, parent)
        ):
            yield node, parent, "delete", "statement deleted"


def list_mutants(source: str) -> list[Mutant]:
    tree = ast.parse(source)
    return [
        Mutant(
            i,
            getattr(node, "lineno", 0),
            int(getattr(node, "end_lineno", None) or getattr(node, "lineno", 0) or 0),
            operator,
            description,
        )
        for i, (node, _parent, operator, description) in enumerate(_points(tree))
    ]


def mutate(source: str, mutant: Mutant) -> str:
    """The module's source with exactly one mutation applied."""
    tree = ast.parse(source)
    for i, (node, parent, operator, _d) in enumerate(_points(tree)):
        if i != mutant.index:
            continue
        if operator.startswith("compare:") and isinstance(node, ast.Compare):
            k = int(operator.split(":")[1])
            node.ops[k] = _COMPARE_SWAP[type(node.ops[k])]()
        elif operator == "binop" and isinstance(node, ast.BinOp):
            node.op = _BINOP_SWAP[type(node.op)]()
        elif operator == "boolop" and isinstance(node, ast.BoolOp):
            node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        elif operator == "not" and isinstance(node, ast.UnaryOp):
            _replace(parent, node, node.operand)
        elif (
            operator == "constant"
            and isinstance(node, ast.Constant)
            and isinstance(node.value, int | float)
        ):
            node.value = node.value + 1
        elif operator == "return" and isinstance(node, ast.Return):
            node.value = ast.Constant(None)
        elif operator == "delete":
            _replace(parent, node, ast.Pass())
        return ast.unparse(ast.fix_missing_locations(tree))
    raise ValueError(f"no mutation point {mutant.index}")


def _replace(parent: ast.AST | None, old: ast.AST, new: ast.AST) -> None:
    assert parent is not None
    for field, value in ast.iter_fields(parent):
        if value is old:
            setattr(parent, field, new)
            return
        if isinstance(value, list):
            for i, item in enumerate(value):
                if item is old:
                    value[i] = new
                    return
    raise ValueError("node not found under its parent")


def load_equivalents() -> dict[tuple[str, int, str], str]:
    """``path:line:operator  why`` lines: survivors that no test could kill."""
    known: dict[tuple[str, int, str], str] = {}
    if not EQUIVALENTS_FILE.exists():
        return known
    for raw in EQUIVALENTS_FILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where, _, why = line.partition(" ")
        path, line_no, operator = where.split(":", 2)
        known[(path, int(line_no), operator)] = why.strip()
    return known


class _LineTracer:
    """Which lines of one file run, and under which test: sys.settrace, only for frames of
    that file (every other frame gets no local tracer, so tests slow down little)."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.context = _IMPORT
        self.hits: dict[int, set[str]] = {}

    def trace(self, frame: FrameType, event: str, arg: object) -> TraceFunction | None:
        if frame.f_code.co_filename != self.filename:
            return None
        return self._line

    def _line(self, frame: FrameType, event: str, arg: object) -> TraceFunction | None:
        if event == "line":
            self.hits.setdefault(frame.f_lineno, set()).add(self.context)
        return self._line


class _TracePlugin:
    """A pytest plugin: per test (setup, call, teardown), the target's lines it runs, how
    long it takes, and whether it starts a process (where no line is traced)."""

    def __init__(self, tracer: _LineTracer, out: Path) -> None:
        self.tracer = tracer
        self.out = out
        self.durations: dict[str, float] = {}
        self.spawners: set[str] = set()

    def start(self) -> None:
        """In the child, before pytest starts: trace, and note every process started."""
        sys.settrace(self.tracer.trace)
        threading.settrace(self.tracer.trace)
        popen_init = subprocess.Popen.__init__

        def noting_init(popen: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
            self.spawners.add(self.tracer.context)
            popen_init(popen, *args, **kwargs)

        subprocess.Popen.__init__ = noting_init  # type: ignore[method-assign,assignment]

    @pytest_hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: Any, nextitem: Any) -> Iterator[None]:
        self.tracer.context = item.nodeid
        started = time.monotonic()
        yield
        self.durations[item.nodeid] = time.monotonic() - started
        self.tracer.context = _IMPORT

    def pytest_sessionfinish(self) -> None:
        sys.settrace(None)
        threading.settrace(None)
        hits = {line: sorted(contexts) for line, contexts in self.tracer.hits.items()}
        modules = [name for name in sys.modules if _preloadable(name)]
        spawners = sorted(self.spawners - {_IMPORT})
        self.out.write_text(
            json.dumps(
                {
                    "hits": hits,
                    "durations": self.durations,
                    "spawners": spawners,
                    "modules": modules,
                }
            )
        )


def _preloadable(name: str) -> bool:
    """A module the fork server may import once for all children: not ours, not a test, and
    not of a pytest plugin's distribution (pytest rewrites those itself, on import)."""
    top = name.partition(".")[0]
    return top not in ("edge_agent", "tests", "conftest", "__main__", "__mp_main__") and (
        top not in _plugin_packages()
    )


@functools.cache
def _plugin_packages() -> frozenset[str]:
    tops: set[str] = set()
    for dist in importlib.metadata.distributions():
        if any(ep.group == "pytest11" for ep in dist.entry_points):
            for file in dist.files or ():
                first = file.parts[0]
                if first.endswith(".py"):
                    tops.add(first.removesuffix(".py"))
                elif "." not in first:
                    tops.add(first)
    return frozenset(tops)


@dataclass
class Coverage:
    """Which tests run each line of the module, which start processes, and how long each
    test took."""

    hits: dict[int, set[str]]
    durations: dict[str, float]
    spawners: set[str]

    def tests_for(self, mutant: Mutant) -> list[str] | None:
        """The tests that run the mutated lines, fastest first, then the tests that start a
        process (it may run the module, untraced); None: every test (a line that runs at
        import, when no test is current)."""
        chosen: set[str] = set()
        for line in range(mutant.line, mutant.end_line + 1):
            contexts = self.hits.get(line, set())
            if _IMPORT in contexts:
                return None
            chosen |= contexts
        # No test at all when none runs these lines and none starts a process: the mutant
        # survives without a run.
        return sorted(chosen, key=self._cost) + sorted(self.spawners - chosen, key=self._cost)

    def _cost(self, nodeid: str) -> tuple[float, str]:
        return self.durations.get(nodeid, 0.0), nodeid


class ForkRunner:
    """Runs pytest in a forked child of this process, in the scratch tree.

    This process imports pytest and the third-party packages the tests use once; every
    child starts from there (a fresh interpreter and its imports cost ~2 s per mutant). It
    never imports ``edge_agent``: every child imports the tree's (mutated) copy anew.
    """

    def __init__(self, tree: Path) -> None:
        self.tree = tree

    def run(
        self,
        args: list[str],
        timeout: float,
        plugin: object = None,
        before: Callable[[], None] | None = None,
    ) -> bool | None:
        """True when the tests pass, False when they fail, None on a timeout (killed)."""
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 3
            try:
                os.setpgid(0, 0)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.chdir(self.tree)
                os.environ.update(PYTHONPATH=str(self.tree), CI="true")
                # The scratch tree's bytecode (and pytest's rewritten tests) is cached across
                # children: compiling every module anew cost most of a child's time.
                os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
                sys.dont_write_bytecode = False
                sys.path.insert(0, str(self.tree))
                # MUTATION_LOG=file keeps the children's pytest output (to see why one fails).
                log = os.environ.get("MUTATION_LOG", os.devnull)
                sink = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                os.dup2(sink, 1)
                os.dup2(sink, 2)
                plugins = [plugin] if plugin is not None else []
                if before is not None:
                    before()
                # A package preloaded here may have imported a plugin's package (httpx
                # imports anyio): pytest can no longer rewrite that plugin's asserts.
                quiet = ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
                options = ["-x", "-q", "-p", "no:cacheprovider", *quiet]
                code = int(pytest.main([*options, *args], plugins))
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    return os.waitstatus_to_exitcode(status) == 0
                time.sleep(0.02)
        except BaseException:  # interrupted: no child may outlive the run
            _kill_group(pid)
            raise
        _kill_group(pid)
        return None


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def run_module(
    module: str,
    tests: list[str],
    sample: int | None,
    seed: int,
    confirm: bool = False,
    lines: set[int] | None = None,
) -> tuple[int, int]:
    """Runs one module's mutants; prints survivors; returns (killed, scored)."""
    source = (ROOT / module).read_text()
    mutants = list_mutants(source)
    if lines:
        mutants = [mutant for mutant in mutants if mutant.line in lines]
    chosen = mutants
    if sample is not None and sample < len(mutants):
        chosen = sorted(random.Random(seed).sample(mutants, sample), key=lambda m: m.index)
    equivalents = load_equivalents()
    with tempfile.TemporaryDirectory(prefix="mutation-") as scratch:
        tree = Path(scratch)
        skip = shutil.ignore_patterns("__pycache__", ".hypothesis")
        shutil.copytree(ROOT / "edge_agent", tree / "edge_agent", ignore=skip)
        shutil.copytree(ROOT / "tests", tree / "tests", ignore=skip)
        shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
        target = tree / module
        runner = ForkRunner(tree)
        started = time.monotonic()
        coverage = _baseline(runner, target, tests)
        if coverage is None:
            print(f"{module}: its tests fail before any mutation; skipped", flush=True)
            return 0, 0
        baseline = time.monotonic() - started
        killed = scored = 0
        for mutant in chosen:
            key = (module, mutant.line, mutant.operator.split(":")[0])
            _write_source(target, mutate(source, mutant))
            selected = coverage.tests_for(mutant)
            passed: bool | None = True
            if selected is None or selected:
                passed = runner.run(selected or tests, timeout=baseline * 3 + 10)
            if passed and selected is not None and confirm:
                # The tests the trace chose passed: with --confirm the whole set decides.
                passed = runner.run(tests, timeout=baseline * 3 + 10)
            if key in equivalents and passed:
                continue  # a known equivalent: not scored
            scored += 1
            if passed:  # printed at once: a long run shows its gaps as it goes
                where = f"{module}:{mutant.line}"
                print(f"  {where} {mutant.operator} {mutant.description}", flush=True)
            else:
                killed += 1
        _write_source(target, source)
    share = 100 * killed / scored if scored else 100.0
    elapsed = time.monotonic() - started
    print(
        f"{module}: {killed}/{scored} killed ({share:.0f} %), "
        f"{len(chosen)} of {len(mutants)} mutants run, {elapsed:.0f} s",
        flush=True,
    )
    return killed, scored


def _write_source(target: Path, text: str) -> None:
    # A cached .pyc is trusted by the source's size and mtime in whole seconds: two mutants
    # of one size written within a second would share it. Drop it.
    for cached in (target.parent / "__pycache__").glob(f"{target.stem}.*.pyc"):
        cached.unlink()
    target.write_text(text)


def _baseline(runner: ForkRunner, target: Path, tests: list[str]) -> Coverage | None:
    """The unmutated tests once, tracing which test runs which line of ``target``."""
    tracer = _LineTracer(str(target))
    out = runner.tree / "mutation-trace.json"
    plugin = _TracePlugin(tracer, out)
    if not runner.run(tests, timeout=1800, plugin=plugin, before=plugin.start):
        return None
    raw = json.loads(out.read_text())
    out.unlink()
    for name in raw["modules"]:
        if name not in sys.modules:
            # Imported here once, so no child imports it again; one that fails to import
            # outside its test run is left to the children.
            with contextlib.suppress(Exception):
                importlib.import_module(name)
    hits = {int(line): set(nodeids) for line, nodeids in raw["hits"].items()}
    return Coverage(hits, raw["durations"], set(raw["spawners"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="module paths (default: the pure core)")
    parser.add_argument("--sample", type=int, help="mutants per module, seeded sample")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--confirm",
        action="store_true",
        help="run a survivor against all the module's tests, not only those that reach it",
    )
    parser.add_argument(
        "--lines",
        type=lambda text: {int(n) for n in text.split(",")},
        help="only the mutants on these lines, e.g. 134,227 (to re-check survivors)",
    )
    parser.add_argument("--fail-under", type=float, default=0.0, help="percent, for CI use")
    args = parser.parse_args()
    # A terminated run unwinds (and ends its test child) like an interrupted one.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    names = args.modules or list(MODULES)
    unknown = [name for name in names if name not in MODULES]
    if unknown:
        parser.error(f"no tests are mapped for {', '.join(unknown)} (see MODULES)")
    killed = scored = 0
    for name in names:
        k, s = run_module(name, MODULES[name], args.sample, args.seed, args.confirm, args.lines)
        killed, scored = killed + k, scored + s
    share = 100 * killed / scored if scored else 100.0
    print(f"total: {killed}/{scored} killed ({share:.0f} %)")
    return 1 if share < args.fail_under else 0


if __name__ == "__main__":
    raise SystemExit(main())
