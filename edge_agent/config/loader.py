"""Loading configuration files: YAML with marks, ``include:``, model validation, checks.

The public entry points:

- :func:`load_site` — a site file to a :class:`SiteConfig`, or :class:`ConfigError` with
  every problem (what ``run`` and hot reload call);
- :func:`check_site_files` — the same without raising, warnings included (``validate``);
- :func:`load_model` — the same machinery for any pydantic model (the hub's file).

``include:`` names other YAML files, relative to the file that includes them. Their
top-level sections are merged into the including file: lists (``rules``) are appended,
mappings (``sensors``, ``assets``, ``connections``) are joined, and an id defined twice is
an error. Every value keeps the file, line and column it came from, so a problem in an
included file is reported in that file.

An included file lies in the site file's folder or below it (its real path: a symbolic
link out of the tree counts as out), or under the folder the site file names with
``include_root:``. Anything else (``/etc/shadow``, ``../../*``) is refused before it is
read, so no line of a foreign file ever reaches a message.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from edge_agent.config.diagnostics import (
    ConfigError,
    ConfigPath,
    Diagnostic,
    Severity,
    sort_diagnostics,
)
from edge_agent.config.messages import translate
from edge_agent.config.models import SiteConfig
from edge_agent.config.schema_paths import expects_bool
from edge_agent.config.yaml_reader import Mark, SourceMap, collector_paused, read_yaml

M = TypeVar("M", bound=BaseModel)

INCLUDE_KEY: Final = "include"
INCLUDE_ROOT_KEY: Final = "include_root"
MAX_INCLUDE_DEPTH: Final = 8
# YAML 1.1 read these as booleans; YAML 1.2 (and this loader) reads them as text.
YAML11_TRUE: Final = frozenset({"y", "yes", "on"})
YAML11_FALSE: Final = frozenset({"n", "no", "off"})
_YAML11_WORDS: Final = YAML11_TRUE | YAML11_FALSE


@dataclass
class Document:
    """The merged data of a file and its includes, with the place of every value."""

    data: dict[str, Any]
    source: SourceMap
    main_file: str
    base_dir: Path
    files: list[str] = field(default_factory=list)

    def mark(self, path: ConfigPath, *, key: bool = False) -> Mark:
        """Where ``path`` was written: a scalar's value, a section's key, or the nearest
        enclosing place that exists (for keys that are missing)."""
        for size in range(len(path), -1, -1):
            here = path[:size]
            if key and size == len(path) and here in self.source.keys:
                return self.source.keys[here]
            if here in self.source.values and here not in self.source.containers:
                return self.source.values[here]
            if here in self.source.keys:
                return self.source.keys[here]
            if here in self.source.values:
                return self.source.values[here]
        return Mark(self.main_file, 1, 1)

    def at(
        self,
        path: ConfigPath,
        message: str,
        severity: Severity = "error",
        *,
        key: bool = False,
        mark_path: ConfigPath | None = None,
    ) -> Diagnostic:
        """A diagnostic about ``path``, placed at ``mark_path`` (default: ``path``)."""
        mark = self.mark(path if mark_path is None else mark_path, key=key)
        return Diagnostic(mark.file, mark.line, mark.col, severity, path, message)

    def where(self, path: ConfigPath) -> str:
        """``line 12`` in the same file as the main one, else ``rules/pumps.yaml:12``."""
        mark = self.mark(path, key=True)
        return f"line {mark.line}" if mark.file == self.main_file else f"{mark.file}:{mark.line}"

    def get(self, *path: str | int) -> Any:
        """The raw value at ``path``, or ``None`` when any step is missing or mistyped."""
        node: Any = self.data
        for element in path:
            if isinstance(node, dict) and isinstance(element, str):
                node = node.get(element)
            elif isinstance(node, list) and isinstance(element, int) and element < len(node):
                node = node[element]
            else:
                return None
        return node


Check = Callable[[Document], Iterable[Diagnostic]]
"""A check over the whole merged document: yields errors and warnings."""


def site_base_dir(path: Path) -> Path:
    """The folder relative paths in a site file are taken from (secrets, certificates)."""
    return Path(path).absolute().parent


def _error(file: str, message: str, line: int = 1, col: int = 1) -> Diagnostic:
    return Diagnostic(file, line, col, "error", (), message)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _fixed_part(pattern: str) -> str:
    """The folder part of a glob pattern before its first wildcard: ``/etc/*`` → ``/etc``."""
    cut = min((pattern.index(char) for char in "*?[" if char in pattern), default=len(pattern))
    return pattern[:cut].rpartition("/")[0] or "."


class _Includer:
    """Reads a file and, depth first, the files it includes, merging them into one."""

    def __init__(self, main: Path) -> None:
        self.problems: list[Diagnostic] = []
        self.files: list[str] = []
        # The folders included files may come from (real paths): the site file's, and the
        # one `include_root:` names.
        self.roots: list[Path] = [main.absolute().parent.resolve()]

    def read(self, path: Path, display: str, stack: tuple[Path, ...]) -> tuple[Any, SourceMap]:
        data, source, problems = read_yaml(path, display)
        self.files.append(display)
        self.problems.extend(problems)
        if isinstance(data, dict) and INCLUDE_ROOT_KEY in data:
            self._include_root(data, source, display, path, main=len(stack) == 1)
        if isinstance(data, dict) and INCLUDE_KEY in data:
            entries = data.pop(INCLUDE_KEY)
            here = (INCLUDE_KEY,)
            doc = Document(data, source, display, path.parent)
            targets = entries if isinstance(entries, list) else [entries]
            for index, target in enumerate(targets):
                where = (*here, index) if isinstance(entries, list) else here
                if not isinstance(target, str) or not target.strip():
                    self.problems.append(doc.at(where, "`include:` takes file names (text)"))
                    continue
                for name in self._expand(doc, where, path, target):
                    self._include(doc, where, path, display, name, stack)
        return data, source

    def _include_root(
        self, data: dict[str, Any], source: SourceMap, display: str, path: Path, *, main: bool
    ) -> None:
        """Take ``include_root:`` out of the data: the site file's own, or an error."""
        value = data.pop(INCLUDE_ROOT_KEY)
        doc = Document(data, source, display, path.parent)
        here = (INCLUDE_ROOT_KEY,)
        if not main:
            self.problems.append(
                doc.at(
                    here,
                    "`include_root:` is set in the site file only: an included file may not "
                    "widen where includes come from",
                    key=True,
                )
            )
            return
        if not isinstance(value, str) or not value.strip():
            self.problems.append(doc.at(here, "`include_root:` takes a folder name (text)"))
            return
        root = (path.parent / value).resolve()
        if not root.is_dir():
            self.problems.append(doc.at(here, f"include_root {value} is not a folder"))
            return
        self.roots.append(root)

    def _outside(
        self, doc: Document, where: ConfigPath, path: Path, target: str, shown: str = ""
    ) -> bool:
        """True (and an error at the include) when ``target`` lies outside every allowed
        folder. The file is not opened: its content must never reach a message."""
        real = (path.parent / target).resolve()
        if any(_inside(real, root) for root in self.roots):
            return False
        if len(self.roots) == 1:
            allowed = f"the site file's folder ({self.roots[0]})"
            fix = "to include files from another folder, name it with `include_root:`"
        else:
            allowed = f"the site file's folder ({self.roots[0]}) and include_root ({self.roots[1]})"
            fix = "a file elsewhere is not included"
        self.problems.append(
            doc.at(where, f"cannot include {shown or target}: it is outside {allowed}; {fix}")
        )
        return True

    def _expand(self, doc: Document, where: ConfigPath, path: Path, target: str) -> list[str]:
        """``rules/*.yaml`` → the matching names in sorted order (relative like the pattern);
        a plain name is itself. A pattern whose folder is outside the allowed ones (``/etc/*``)
        is refused as a whole, before it is expanded."""
        if not any(char in target for char in "*?["):
            return [target]
        if self._outside(doc, where, path, _fixed_part(target), target):
            return []
        matches = sorted(glob.glob(str(path.parent / target)))
        if not matches:
            self.problems.append(
                doc.at(where, f"include pattern {target} matches no file", "warning")
            )
        base = str(path.parent / "_")[:-1]
        return [m[len(base) :] if m.startswith(base) else m for m in matches]

    def _include(
        self,
        doc: Document,
        where: ConfigPath,
        path: Path,
        display: str,
        target: str,
        stack: tuple[Path, ...],
        *,
        named_by_user: bool = False,
    ) -> None:
        child_path = path.parent / target
        child_display = str(Path(display).parent / target)
        if not named_by_user and self._outside(doc, where, path, target):
            return
        identity = child_path.absolute()
        if identity in stack or len(stack) >= MAX_INCLUDE_DEPTH:
            reason = "includes itself" if identity in stack else "nests includes too deeply"
            self.problems.append(doc.at(where, f"cannot include {target}: it {reason}"))
            return
        try:
            data, source = self.read(child_path, child_display, (*stack, identity))
        except ConfigError as exc:
            first = exc.diagnostics[0]
            if len(exc.diagnostics) == 1 and (first.line, first.col) == (1, 1):
                # The file itself cannot be read: say so where the include is written.
                self.problems.append(doc.at(where, f"cannot include {target}: {first.message}"))
            else:
                self.problems.extend(exc.diagnostics)
            return
        if data is None:
            return  # an empty included file adds nothing
        if not isinstance(data, dict):
            self.problems.append(
                _error(child_display, "an included file holds mappings such as `rules:`")
            )
            return
        self._merge(doc, data, source, child_display)

    def _merge(self, into: Document, data: dict[str, Any], source: SourceMap, file: str) -> None:
        for section, value in data.items():
            mine = into.data.get(section)
            prefix: ConfigPath = (section,)
            if section not in into.data:
                into.data[section] = value
                into.source.update_shifted(source, prefix, prefix)
            elif isinstance(mine, list) and isinstance(value, list):
                for index in range(len(value)):
                    into.source.update_shifted(source, (section, index), (section, len(mine)))
                    mine.append(value[index])
            elif isinstance(mine, dict) and isinstance(value, dict):
                for key, item in value.items():
                    if key in mine:
                        mark = source.keys[(section, key)]
                        self.problems.append(
                            Diagnostic(
                                mark.file,
                                mark.line,
                                mark.col,
                                "error",
                                (section, key),
                                f"`{key}` is already defined in {section} "
                                f"({into.where((section, key))})",
                            )
                        )
                        continue
                    mine[key] = item
                    into.source.update_shifted(source, (section, key), (section, key))
            else:
                mark = source.keys[prefix]
                self.problems.append(
                    Diagnostic(
                        mark.file,
                        mark.line,
                        mark.col,
                        "error",
                        prefix,
                        f"`{section}` is already set in {into.where(prefix)}; an included file "
                        "may add to lists and mappings, not replace a value",
                    )
                )


def load_document(paths: Path | Sequence[Path]) -> tuple[Document | None, list[Diagnostic]]:
    """Read the first file and its includes (and any further ``paths``, merged as if
    included). ``None`` when the main file cannot be read as a YAML mapping."""
    path_list = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    if not path_list:
        raise ValueError("load_document needs at least one path")
    main = path_list[0]
    display = str(main)
    includer = _Includer(main)
    try:
        data, source = includer.read(main, display, (main.absolute(),))
    except ConfigError as exc:
        return None, list(exc.diagnostics)
    if data is None:
        return None, [_error(display, "is empty; a site file starts with `version: 1`")]
    if not isinstance(data, dict):
        found = "a list" if isinstance(data, list) else "a single value"
        return None, [
            _error(
                display,
                f"is not a site file: its top level is {found}, not sections such as `version: 1`",
            )
        ]
    doc = Document(data, source, display, site_base_dir(main), includer.files)
    for extra in path_list[1:]:
        includer._include(
            doc, (), main, display, str(extra.absolute()), (main.absolute(),), named_by_user=True
        )
    doc.files = includer.files
    return doc, includer.problems


def yaml11_words(doc: Document, model_cls: type[BaseModel]) -> Iterable[Diagnostic]:
    """``on``/``off``/``yes``/``no`` written where a boolean may go: YAML 1.2 reads text."""
    # Look the words up first, sort only those found: a big site has 100,000 plain texts.
    found = [
        path
        for path in doc.source.plain_text
        if isinstance(value := doc.get(*path), str) and value.lower() in _YAML11_WORDS
    ]
    for path in sorted(found, key=str):
        value = doc.get(*path)
        word = value.lower()
        allowed, only = expects_bool(model_cls, doc.data, path)
        if not allowed or (not only and word in ("y", "n")):
            continue
        meant = "true" if word in YAML11_TRUE else "false"
        message = f"`{value}` is text in YAML 1.2, not a boolean; write {meant}"
        if not only:
            message += f' (or "{value}" in quotes if you mean the text)'
        yield doc.at(path, message)


def validate_document(
    doc: Document, model_cls: type[M], checks: Sequence[Check] = ()
) -> tuple[M | None, list[Diagnostic]]:
    """Validate merged data against ``model_cls`` and run ``checks``; every problem found."""
    diagnostics: list[Diagnostic] = list(yaml11_words(doc, model_cls))
    model: M | None = None
    try:
        model = model_cls.model_validate(doc.data)
    except ValidationError as exc:
        diagnostics.extend(translate(exc, doc, model_cls))
    for check in checks:
        try:
            diagnostics.extend(check(doc))
        except Exception as exc:  # a check must never hide the other problems
            diagnostics.append(doc.at((), f"internal error in check {check.__name__}: {exc!r}"))
    return model, diagnostics


def load_model(
    paths: Path | Sequence[Path], model_cls: type[M], checks: Sequence[Check] = ()
) -> tuple[M | None, list[Diagnostic]]:
    """Load, merge, validate and check. The model is returned only when there is no error
    (warnings alone do not stop it); the diagnostics are sorted by file and line."""
    with collector_paused():
        return _load_model(paths, model_cls, checks)


def _load_model(
    paths: Path | Sequence[Path], model_cls: type[M], checks: Sequence[Check]
) -> tuple[M | None, list[Diagnostic]]:
    doc, diagnostics = load_document(paths)
    if doc is None:
        return None, sort_diagnostics(diagnostics)
    model, more = validate_document(doc, model_cls, checks)
    diagnostics = sort_diagnostics([*diagnostics, *more])
    if any(d.is_error for d in diagnostics):
        return None, diagnostics
    return model, diagnostics


_FRAGMENT_KEYS: Final = frozenset({"connections", "assets", "sensors", "rules", INCLUDE_KEY})


def check_site_files(paths: Path | Sequence[Path]) -> tuple[SiteConfig | None, list[Diagnostic]]:
    """A site file (with its includes) checked completely: the config when it has no
    errors, and every error and warning."""
    with collector_paused():
        return _check_site_files(paths)


def _check_site_files(paths: Path | Sequence[Path]) -> tuple[SiteConfig | None, list[Diagnostic]]:
    from edge_agent.config.checks import SITE_CHECKS

    doc, diagnostics = load_document(paths)
    if doc is None:
        return None, sort_diagnostics(diagnostics)
    if "version" not in doc.data and "site" not in doc.data and set(doc.data) <= _FRAGMENT_KEYS:
        diagnostics.append(
            _error(
                doc.main_file,
                "has no `version:` or `site:`: if a site file includes it, "
                "validate that site file instead",
            )
        )
        return None, sort_diagnostics(diagnostics)
    sections = {info.alias or name for name, info in SiteConfig.model_fields.items()}
    if not set(doc.data) & (sections | {INCLUDE_KEY}):
        # Prose such as "Note: ..." parses as a one-key mapping; say what it is, once.
        keys = ", ".join(f"`{key}`" for key in list(doc.data)[:3])
        diagnostics.append(
            _error(
                doc.main_file,
                f"is not a site file: its keys ({keys}) are none of version:, site:, "
                "connections:, sensors:, rules:",
            )
        )
        return None, sort_diagnostics(diagnostics)
    model, more = validate_document(doc, SiteConfig, SITE_CHECKS)
    diagnostics = sort_diagnostics([*diagnostics, *more])
    if any(d.is_error for d in diagnostics):
        return None, diagnostics
    return model, diagnostics


def load_site(path: Path) -> SiteConfig:
    """The site file as a :class:`SiteConfig`; :class:`ConfigError` (with every problem,
    warnings included) if it has any error."""
    config, diagnostics = check_site_files(path)
    if config is None:
        raise ConfigError(diagnostics)
    return config
