"""One YAML file into plain Python data plus the file, line and column of every value.

ruamel.yaml (YAML 1.2) composes the node graph; we build dicts, lists and scalars from it
ourselves so that every key and value keeps its mark, *every* duplicate key is reported (not
only the first, as the constructor would), and nothing but :class:`ConfigError` escapes:
a site file is typed by people over SSH, and any text at all must give a readable line.

libyaml's C parser composes when it is installed and the text is plain YAML
(:mod:`edge_agent.config.yaml_fast`); anything else, errors included, goes through ruamel's
pure-Python parser, whose messages ours are built on.
"""

from __future__ import annotations

import gc
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NamedTuple

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from edge_agent.config.diagnostics import ConfigPath, Diagnostic
from edge_agent.config.yaml_errors import file_problem, yaml_problem
from edge_agent.config.yaml_fast import compose_fast

MAX_FILE_BYTES: Final = 10 * 1024 * 1024
MAX_VALUES: Final = 200_000  # a bound on alias expansion ("billion laughs")
MAX_DEPTH: Final = 64

_CORE_TAGS: Final = {
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
_TEXT_TAGS: Final = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:timestamp",  # dates stay text: no field of ours wants a date
    "tag:yaml.org,2002:binary",
    "tag:yaml.org,2002:value",
}
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"


class Mark(NamedTuple):
    """A place in a file; ``line`` and ``col`` count from 1. (A tuple: a big site file
    has 200,000 of them, and a frozen dataclass takes three times as long to make.)"""

    file: str
    line: int
    col: int


@dataclass
class SourceMap:
    """Where each value of a document was written, by its path in the data.

    ``values[path]`` is where the value starts, ``keys[path]`` where its key is written
    (absent for list items and the root). ``plain_text`` holds the paths of unquoted
    string scalars (where ``on`` may have been meant as a boolean); ``containers`` those
    of mappings and lists.
    """

    values: dict[ConfigPath, Mark] = field(default_factory=dict)
    keys: dict[ConfigPath, Mark] = field(default_factory=dict)
    plain_text: set[ConfigPath] = field(default_factory=set)
    containers: set[ConfigPath] = field(default_factory=set)

    def update_shifted(self, other: SourceMap, prefix: ConfigPath, new_prefix: ConfigPath) -> None:
        """Copy ``other``'s entries under ``prefix`` to the same places under ``new_prefix``
        (how an included file's ``rules[0]`` becomes the merged ``rules[7]``)."""
        size = len(prefix)
        for mine, theirs in (
            (self.values, other.values),
            (self.keys, other.keys),
        ):
            for path, mark in theirs.items():
                if path[:size] == prefix:
                    mine[new_prefix + path[size:]] = mark
        for own_set, their_set in (
            (self.plain_text, other.plain_text),
            (self.containers, other.containers),
        ):
            own_set.update(new_prefix + p[size:] for p in their_set if p[:size] == prefix)


def _mark(file: str, node: Node) -> Mark:
    return Mark(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _is_plain(node: ScalarNode) -> bool:
    """Written without quotes or ``|``/``>`` (the pure parser says ``None``, the C one ``''``)."""
    return not node.style


def _is_empty_text(node: Node) -> bool:
    """Nothing written at all (no quotes either), whatever the tag."""
    return isinstance(node, ScalarNode) and node.value == "" and _is_plain(node)


def _is_empty(node: Node) -> bool:
    """An empty plain value (``key:`` and nothing after it), as opposed to ``~``/``null``."""
    return _is_empty_text(node) and str(node.tag) == "tag:yaml.org,2002:null"


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a bounded piece of work.

    Loading allocates a few objects per value and frees none of them until it ends: the
    collector's passes over the growing heap cost more than the parse itself (measured:
    4x for composing 10,000 sensors, +30% for the whole load). Nested use is fine; the
    collector runs again as before when the outermost block ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_text(path: Path, display: str) -> str:
    """The file's text, or a :class:`ConfigError` that says in one line why not."""
    try:
        if path.is_dir():
            raise file_problem(display, "is a directory; give the site file inside it")
        if not path.exists():
            raise file_problem(display, "no such file")
        if not path.is_file():  # a FIFO or a device would block or never end
            raise file_problem(display, "is not a regular file")
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise file_problem(display, f"cannot read: {exc.strerror or exc}") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise file_problem(
            display, f"is larger than {MAX_FILE_BYTES // 1024**2} MiB; not a site file"
        )
    if b"\x00" in raw:
        raise file_problem(display, "is a binary file, not YAML text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise file_problem(
            display,
            f"is not UTF-8 text (byte 0x{raw[exc.start]:02x}); save it as UTF-8",
            line,
            col,
        ) from exc


class _NeedsPureParser(Exception):
    """The C parser's graph holds a mark the pure parser may place elsewhere."""


class _Builder:
    """Turns a composed node graph into plain data, recording marks and problems.

    ``from_c_parser``: the nodes come from libyaml, which places an empty value (``- ``
    with nothing after it) at another column than ruamel does; when such a mark would be
    recorded, :class:`_NeedsPureParser` asks for the pure parser's graph instead."""

    def __init__(self, file: str, yaml: YAML, *, from_c_parser: bool = False) -> None:
        self.file = file
        self.yaml = yaml
        self.from_c_parser = from_c_parser
        self.source = SourceMap()
        self.problems: list[Diagnostic] = []
        self.count = 0
        self._active: set[int] = set()
        # Numbers, booleans and nulls are immutable: each distinct text is read once.
        self._scalars: dict[tuple[str, str], Any] = {}
        # A tag's text by the tag object (the C path shares one object per tag; every
        # node stays alive while building, so no id is reused).
        self._tag_texts: dict[int, str] = {}

    def mark(self, node: Node) -> Mark:
        """Where ``node`` starts, as the pure parser would say."""
        if self.from_c_parser and _is_empty_text(node):
            raise _NeedsPureParser
        return _mark(self.file, node)

    def tag(self, node: Node) -> str:
        """``node.tag`` as text, such as ``tag:yaml.org,2002:int`` (ruamel builds the text
        anew on each call: four calls per value on a 100,000-value file)."""
        key = id(node.ctag)
        text = self._tag_texts.get(key)
        if text is None:
            text = self._tag_texts[key] = str(node.tag)
        return text

    def problem(self, node: Node, path: ConfigPath, message: str) -> None:
        mark = self.mark(node)
        self.problems.append(Diagnostic(self.file, mark.line, mark.col, "error", path, message))

    def build(self, node: Node, path: ConfigPath) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise file_problem(self.file, f"holds more than {MAX_VALUES} values (alias bomb?)")
        if len(path) > MAX_DEPTH:
            raise file_problem(self.file, f"is nested more than {MAX_DEPTH} levels deep")
        if path not in self.source.values:
            self.source.values[path] = self.mark(node)
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if id(node) in self._active:
            self.problem(node, path, "an alias refers to the mapping or list that contains it")
            return None
        self._active.add(id(node))
        try:
            self.source.containers.add(path)
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            if isinstance(node, SequenceNode):
                return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        finally:
            self._active.discard(id(node))
        return None  # pragma: no cover - the composer makes only these three node kinds

    def _scalar(self, node: ScalarNode, path: ConfigPath) -> Any:
        tag = self.tag(node)
        if tag in _CORE_TAGS:
            memo = (tag, node.value)
            if memo in self._scalars:
                return self._scalars[memo]
            try:
                value = self.yaml.constructor.construct_object(node, deep=True)
            except (YAMLError, ValueError, ArithmeticError, LookupError):
                # LookupError: ruamel reads an empty `!!int` as text[0]
                self.problem(node, path, f"cannot read {node.value!r} as {tag.rsplit(':', 1)[-1]}")
                return node.value
            self._scalars[memo] = value
            return value
        if tag not in _TEXT_TAGS:
            self.problem(node, path, f"unknown YAML tag {tag}: remove it")
        if _is_plain(node) and tag == "tag:yaml.org,2002:str":
            self.source.plain_text.add(path)
        return str(node.value)

    def _key_text(self, node: Node, path: ConfigPath) -> str | None:
        if isinstance(node, ScalarNode):
            # Keys are names: `101:` is the sensor "101", not the number 101.
            return str(node.value) if self.tag(node) != "tag:yaml.org,2002:null" else "null"
        self.problem(node, path, "a key must be a plain name, not a mapping or a list")
        return None

    def _mapping(self, node: MappingNode, path: ConfigPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if self.tag(key_node) == _MERGE_TAG:
                merges.append(value_node)
                continue
            key = self._key_text(key_node, path)
            if key is None:
                continue
            child = (*path, key)
            if key in result:
                first = self.source.keys[child]
                self.problem(
                    key_node,
                    child,
                    f"duplicate key `{key}` (first at line {first.line}); "
                    "YAML would silently keep only one of them",
                )
                continue
            if child not in self.source.keys:
                self.source.keys[child] = self.mark(key_node)
            if _is_empty(value_node) and child not in self.source.values:
                # `id:` with nothing after it: the parser marks the empty value at the next
                # token, often on the next line; the key is where the engineer looks.
                self.source.values[child] = self.mark(key_node)
            result[key] = self.build(value_node, child)
        for merge_node in merges:  # `<<: *defaults`: keys written here win
            sources = merge_node.value if isinstance(merge_node, SequenceNode) else [merge_node]
            for source in sources:
                if not isinstance(source, MappingNode) or id(source) in self._active:
                    self.problem(
                        merge_node, path, "`<<:` merges another mapping (or a list of them)"
                    )
                    continue
                self._active.add(id(source))
                try:
                    merged = self._mapping(source, path)
                finally:
                    self._active.discard(id(source))
                for key, value in merged.items():
                    result.setdefault(key, value)
        return result


_BAD_CONTROL: Final = re.compile(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]")


def parse_yaml(
    text: str, display: str, *, fast: bool = True
) -> tuple[Any, SourceMap, list[Diagnostic]]:
    """Parse one document. Returns the data (``None`` for an empty file), its source map
    and the non-fatal problems (duplicate keys, unknown tags); raises :class:`ConfigError`
    when the text is not YAML. ``fast=False`` skips the C parser (the result is the same;
    tests compare the two)."""
    control = _BAD_CONTROL.search(text)
    if control:
        line = text.count("\n", 0, control.start()) + 1
        col = control.start() - (text.rfind("\n", 0, control.start()) + 1) + 1
        raise file_problem(
            display,
            f"contains the control character U+{ord(control.group()):04X}; not a text file",
            line,
            col,
        )
    yaml = YAML(typ="safe", pure=True)  # its constructor reads numbers and booleans
    with collector_paused():
        composed, root = compose_fast(text) if fast else (False, None)
        if composed:
            try:
                return _build(display, yaml, root, [], from_c_parser=True)
            except _NeedsPureParser:
                pass
        root, notes = _compose_pure(yaml, text, display)
        return _build(display, yaml, root, notes)


def _build(
    display: str,
    yaml: YAML,
    root: Node | None,
    notes: list[Diagnostic],
    *,
    from_c_parser: bool = False,
) -> tuple[Any, SourceMap, list[Diagnostic]]:
    if root is None:
        return None, SourceMap(), notes
    builder = _Builder(display, yaml, from_c_parser=from_c_parser)
    try:
        data = builder.build(root, ())
    except RecursionError as exc:
        raise file_problem(display, f"is nested too deeply (over {MAX_DEPTH} levels)") from exc
    return data, builder.source, [*notes, *builder.problems]


def _compose_pure(yaml: YAML, text: str, display: str) -> tuple[Node | None, list[Diagnostic]]:
    """ruamel's pure-Python composer: slow, and the source of our YAML error messages."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            # ruamel warns (on stderr) about a reused anchor; say it our way instead.
            warnings.simplefilter("always")
            root: Node | None = yaml.compose(text)
    except YAMLError as exc:
        raise yaml_problem(display, exc, text) from exc
    except RecursionError as exc:
        raise file_problem(display, f"is nested too deeply (over {MAX_DEPTH} levels)") from exc
    except Exception as exc:
        # ruamel has failed in other ways on hostile input; translate, never crash.
        raise file_problem(display, f"cannot be parsed as YAML ({type(exc).__name__})") from exc
    return root, [_warning_diagnostic(display, warning.message) for warning in caught]


_SECOND_ANCHOR: Final = re.compile(
    r"duplicate anchor '(?P<name>[^']*)'.*?line (?P<l1>\d+), column \d+.*?"
    r"second occurrence.*?line (?P<l2>\d+), column (?P<c2>\d+)",
    re.DOTALL,
)


def _warning_diagnostic(display: str, message: Warning | str) -> Diagnostic:
    """A warning of the YAML library as one of our warnings, at its place when known."""
    text = str(message)
    anchor = _SECOND_ANCHOR.search(text)
    if anchor:
        return Diagnostic(
            display,
            int(anchor["l2"]),
            int(anchor["c2"]),
            "warning",
            (),
            f"anchor &{anchor['name']} is defined again (first at line {anchor['l1']}); "
            "aliases after this line refer to this one",
        )
    first = next((line for line in text.splitlines() if line.strip()), "a YAML warning")
    return Diagnostic(display, 1, 1, "warning", (), f"YAML: {first.strip()}")


def read_yaml(path: Path, display: str) -> tuple[Any, SourceMap, list[Diagnostic]]:
    """:func:`read_text` then :func:`parse_yaml`."""
    return parse_yaml(read_text(path, display), display)
