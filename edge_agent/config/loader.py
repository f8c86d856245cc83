"""Loading configuration files: YAML with marks, ``include:``, model validation, checks.

The public entry points:

- :func:`load_site` — a site file to a :class:`SiteConfig`, or :class:`ConfigError` with
  every problem (what ``run`` and hot reload call);
- :func:`check_site_files` — the same without raising, warnings included (``validate``);
- :func:`load_model` — the same machinery for any pydantic model (the hub's file).

Reading a file and its includes is :mod:`.include`; the merged result, with the place of
every value, is a :class:`~.document.Document`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final, TypeVar

from pydantic import BaseModel, ValidationError

from edge_agent.config.diagnostics import (
    ConfigError,
    Diagnostic,
    sort_diagnostics,
)
from edge_agent.config.document import Check, Document, file_error
from edge_agent.config.include import INCLUDE_KEY, Includer
from edge_agent.config.messages import translate
from edge_agent.config.models import SiteConfig
from edge_agent.config.schema_paths import expects_bool
from edge_agent.config.site_paths import site_base_dir
from edge_agent.config.yaml_reader import collector_paused

__all__ = [
    "YAML11_FALSE",
    "YAML11_TRUE",
    "Check",
    "Document",
    "check_site_files",
    "load_document",
    "load_model",
    "load_site",
    "site_base_dir",
    "validate_document",
    "yaml11_words",
]

M = TypeVar("M", bound=BaseModel)
# YAML 1.1 read these as booleans; YAML 1.2 (and this loader) reads them as text.
YAML11_TRUE: Final = frozenset({"y", "yes", "on"})
YAML11_FALSE: Final = frozenset({"n", "no", "off"})
_YAML11_WORDS: Final = YAML11_TRUE | YAML11_FALSE


def load_document(paths: Path | Sequence[Path]) -> tuple[Document | None, list[Diagnostic]]:
    """Read the first file and its includes (and any further ``paths``, merged as if
    included). ``None`` when the main file cannot be read as a YAML mapping."""
    path_list = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    if not path_list:
        raise ValueError("load_document needs at least one path")
    main = path_list[0]
    display = str(main)
    includer = Includer(main)
    try:
        data, source = includer.read(main, display, (main.absolute(),))
    except ConfigError as exc:
        return None, list(exc.diagnostics)
    if data is None:
        return None, [file_error(display, "is empty; a site file starts with `version: 1`")]
    if not isinstance(data, dict):
        found = "a list" if isinstance(data, list) else "a single value"
        return None, [
            file_error(
                display,
                f"is not a site file: its top level is {found}, not sections such as `version: 1`",
            )
        ]
    doc = Document(data, source, display, site_base_dir(main), includer.files)
    for extra in path_list[1:]:
        includer.include(
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
            file_error(
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
            file_error(
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
