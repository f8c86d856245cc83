"""``include:``: a file and, depth first, the files it includes, merged into one.

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
from pathlib import Path
from typing import Any, Final

from edge_agent.config.diagnostics import ConfigError, ConfigPath, Diagnostic
from edge_agent.config.document import Document, file_error
from edge_agent.config.yaml_reader import SourceMap, read_yaml

INCLUDE_KEY: Final = "include"
INCLUDE_ROOT_KEY: Final = "include_root"
MAX_INCLUDE_DEPTH: Final = 8


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _fixed_part(pattern: str) -> str:
    """The folder part of a glob pattern before its first wildcard: ``/etc/*`` → ``/etc``."""
    cut = min((pattern.index(char) for char in "*?[" if char in pattern), default=len(pattern))
    return pattern[:cut].rpartition("/")[0] or "."


class Includer:
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
                    self.include(doc, where, path, display, name, stack)
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

    def include(
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
                file_error(child_display, "an included file holds mappings such as `rules:`")
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
                        self.problems.append(
                            _error_at_key(
                                source,
                                (section, key),
                                f"`{key}` is already defined in {section} "
                                f"({into.where((section, key))})",
                            )
                        )
                        continue
                    mine[key] = item
                    into.source.update_shifted(source, (section, key), (section, key))
            else:
                self.problems.append(
                    _error_at_key(
                        source,
                        prefix,
                        f"`{section}` is already set in {into.where(prefix)}; an included file "
                        "may add to lists and mappings, not replace a value",
                    )
                )


def _error_at_key(source: SourceMap, path: ConfigPath, message: str) -> Diagnostic:
    """An error placed at the key ``path`` as the included file writes it."""
    mark = source.keys[path]
    return Diagnostic(mark.file, mark.line, mark.col, "error", path, message)
