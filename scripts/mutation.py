"""A small mutation tester for the pure core: how much of each module do its tests pin?

Each mutant is one classic change to one module (a flipped comparison, a constant ±1, a
swapped operator, ``and``/``or``, a dropped ``not``, a ``return None``, a deleted
statement), run against that module's own tests in a throwaway copy of the tree, so an
interrupted run never leaves a mutated file behind. A mutant the tests fail on is killed;
one they pass is a survivor: a missing assertion, or an equivalent mutant listed with its
reason in ``scripts/mutation-equivalents.txt``.

    python scripts/mutation.py                      # every module in MODULES, all mutants
    python scripts/mutation.py --sample 40 --seed 1 # a seeded sample per module
    python scripts/mutation.py edge_agent/config/units.py

Not part of ``make test``: a full run takes tens of minutes (``make mutation``).
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS_FILE = ROOT / "scripts" / "mutation-equivalents.txt"

# The pure core and the tests that own each module.
MODULES: dict[str, list[str]] = {
    "edge_agent/sources/modbus/decode.py": ["tests/sources_modbus/test_decode.py"],
    "edge_agent/rules/compiled.py": ["tests/rules"],
    "edge_agent/config/units.py": ["tests/config/test_units.py", "tests/config/test_properties.py"],
    "edge_agent/alerts.py": ["tests/rules"],
    "edge_agent/wire/alert.py": ["tests/hub", "tests/forwarders_mqtt"],
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
    parents: dict[ast.AST, ast.AST] = {}
    for parent in ast.walk(tree):
        for child in ast.iter_child_nodes(parent):
            parents[child] = parent
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
        Mutant(i, getattr(node, "lineno", 0), operator, description)
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
        elif operator == "constant" and isinstance(node, ast.Constant):
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


def _run_tests(tree: Path, tests: list[str], timeout: float) -> bool | None:
    """True when the tests pass, False when they fail, None on a timeout (killed)."""
    env = dict(os.environ, PYTHONPATH=str(tree), CI="true", PYTHONDONTWRITEBYTECODE="1")
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        done = subprocess.run(
            command, cwd=tree, env=env, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return None
    return done.returncode == 0


def run_module(module: str, tests: list[str], sample: int | None, seed: int) -> tuple[int, int]:
    """Runs one module's mutants; prints survivors; returns (killed, scored)."""
    source = (ROOT / module).read_text()
    mutants = list_mutants(source)
    chosen = mutants
    if sample is not None and sample < len(mutants):
        chosen = sorted(random.Random(seed).sample(mutants, sample), key=lambda m: m.index)
    equivalents = load_equivalents()
    with tempfile.TemporaryDirectory(prefix="mutation-") as scratch:
        tree = Path(scratch)
        shutil.copytree(ROOT / "edge_agent", tree / "edge_agent")
        shutil.copytree(ROOT / "tests", tree / "tests")
        shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
        started = time.monotonic()
        if not _run_tests(tree, tests, timeout=600):
            print(f"{module}: its tests fail before any mutation; skipped")
            return 0, 0
        baseline = time.monotonic() - started
        target = tree / module
        killed = scored = 0
        survivors: list[str] = []
        for mutant in chosen:
            key = (module, mutant.line, mutant.operator.split(":")[0])
            target.write_text(mutate(source, mutant))
            passed = _run_tests(tree, tests, timeout=baseline * 3 + 10)
            if key in equivalents and passed:
                continue  # a known equivalent: not scored
            scored += 1
            if passed:
                survivors.append(f"  {module}:{mutant.line} {mutant.operator} {mutant.description}")
            else:
                killed += 1
        target.write_text(source)
    share = 100 * killed / scored if scored else 100.0
    elapsed = time.monotonic() - started
    print(
        f"{module}: {killed}/{scored} killed ({share:.0f} %), "
        f"{len(chosen)} of {len(mutants)} mutants run, {elapsed:.0f} s"
    )
    for line in survivors:
        print(line)
    return killed, scored


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="module paths (default: the pure core)")
    parser.add_argument("--sample", type=int, help="mutants per module, seeded sample")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fail-under", type=float, default=0.0, help="percent, for CI use")
    args = parser.parse_args()
    names = args.modules or list(MODULES)
    unknown = [name for name in names if name not in MODULES]
    if unknown:
        parser.error(f"no tests are mapped for {', '.join(unknown)} (see MODULES)")
    killed = scored = 0
    for name in names:
        k, s = run_module(name, MODULES[name], args.sample, args.seed)
        killed, scored = killed + k, scored + s
    share = 100 * killed / scored if scored else 100.0
    print(f"total: {killed}/{scored} killed ({share:.0f} %)")
    return 1 if share < args.fail_under else 0


if __name__ == "__main__":
    raise SystemExit(main())
