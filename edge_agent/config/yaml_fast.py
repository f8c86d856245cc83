"""The fast way to compose a YAML document: libyaml's C parser (``ruamel.yaml.clib``).

ruamel.yaml's pure-Python parser takes seconds for a site with 10,000 sensors; the C parser
takes a tenth of that and yields the same node graph (ruamel's own node classes, with the
same line and column on every node). It is only a fast path: :func:`compose_fast` returns
``None`` whenever its answer could differ from the pure parser's — the C extension is not
installed, the text is not valid YAML (the pure parser then says why, in the words and at
the place our messages are built on), an anchor is reused (the pure parser warns about it),
a ``%`` directive could change the YAML version, or the nesting is deep enough to overflow
the C composer's stack. The caller then composes with the pure parser.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any, Final

from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.resolver import BaseResolver, VersionedResolver
from ruamel.yaml.tag import Tag

# The C composer recurses once per level on the C stack (100,000 levels crash the
# process); deeper documents go to the pure parser, which refuses them politely.
MAX_FAST_DEPTH: Final = 500

# Texts the pure parser may read differently (each found by tests/config/test_fast_path.py):
# directives (`%YAML 1.1` switches the implicit types); a `...` line (ruamel reads it as
# text inside a block scalar); the Unicode line breaks YAML 1.1 knew and libyaml does not;
# tabs (libyaml lets some through that ruamel rejects; a generated site file has none).
_ODD_LINES: Final = re.compile(r"(?m)^(?:%|\.\.\.)")
_ODD_CHARACTERS: Final = re.compile(r"[\t\x85\u2028\u2029]")
# Anchor names: libyaml ends one at the first character that is not a letter, digit, `_`
# or `-`; ruamel reads on (`&a?b` is one name to it, an anchor and a key to libyaml).
# Block scalars (`|`, `>`): the two judge their indentation differently. Tags (`!!str`,
# `!x`; site files use none): the two read odd ones differently. Each only where a token
# starts (after a space, a bracket, a comma, or at the start of the text).
_TOKEN_CHARACTERS: Final = re.compile(r"[&*|>!]")
_ODD_TOKENS: Final = re.compile(
    r"[&*](?<![^\s\[\]{},][&*])[A-Za-z0-9_-]*[^A-Za-z0-9_\-\s,\[\]{}]"
    r"|[|>](?<![^\s\[\]{},][|>])[-+0-9]*(?:[^-+0-9 ]|[ ]*(?:#|$))"
    r"|!(?<![^\s\[\]{},]!)",
    re.MULTILINE,
)


def _for_pure_parser(text: str) -> bool:
    """Whether ``text`` holds something the two parsers may read differently (cheap
    checks first: most site files have no `&*|>!` at all)."""
    return bool(
        _ODD_CHARACTERS.search(text)
        or _ODD_LINES.search(text)
        or (_TOKEN_CHARACTERS.search(text) and _ODD_TOKENS.search(text))
    )


def _c_parser() -> type | None:
    try:
        module = importlib.import_module("_ruamel_yaml")
        # A subclass, so that instances take the resolver hooks as attributes.
        return type("_CLoader", (module.CParser,), {})
    except (ImportError, AttributeError, TypeError):  # absent, or a build we do not know
        return None


_CPARSER: Final = _c_parser()


def available() -> bool:
    """Whether the C parser (package ``ruamel.yaml.clib``) is installed."""
    return _CPARSER is not None


class _Resolver:
    """ruamel.yaml's YAML 1.2 implicit typing (``85`` → int, ``on`` → str), memoized.

    The C composer asks for the tag of every plain scalar; ruamel's resolver looks up
    the YAML version on each call, which alone costs more than the parse. The rules are
    ruamel's own, read once; a site file repeats most of its words, hence the memo."""

    def __init__(self) -> None:
        self._rules: dict[Any, list[tuple[str, re.Pattern[str]]]] = VersionedResolver(
            version=(1, 2)
        ).versioned_resolver
        self._memo: dict[str, Tag] = {}
        self._tags: dict[str, Tag] = {}
        self._defaults: dict[type[Node], Tag] = {
            ScalarNode: BaseResolver.DEFAULT_SCALAR_TAG,
            SequenceNode: BaseResolver.DEFAULT_SEQUENCE_TAG,
            MappingNode: BaseResolver.DEFAULT_MAPPING_TAG,
        }

    def resolve(self, kind: type[Node], value: Any, implicit: Any) -> Tag:
        """The tag of a node written without one (same answers as ruamel's resolver)."""
        if kind is ScalarNode and implicit[0]:
            known = self._memo.get(value)
            if known is None:
                known = self._memo[value] = self._implicit_tag(value)
            return known
        return self._defaults[kind]

    def _implicit_tag(self, value: str) -> Tag:
        rules = [*self._rules.get(value[0] if value else "", []), *self._rules.get(None, [])]
        for suffix, pattern in rules:
            if pattern.match(value):
                return self._tags.setdefault(suffix, Tag(suffix=suffix))
        return self._defaults[ScalarNode]


def _ignore(*_args: object) -> None:
    """The resolver's path hooks: site files use no path-dependent tags."""


def _loader(text: str, resolver: _Resolver) -> Any:
    assert _CPARSER is not None
    loader = _CPARSER(text)
    # The C composer calls these on itself; only ``resolve`` has work to do.
    hooks: dict[str, Callable[..., Any]] = {
        "resolve": resolver.resolve,
        "descend_resolver": _ignore,
        "ascend_resolver": _ignore,
    }
    for name, hook in hooks.items():
        setattr(loader, name, hook)
    return loader


def _too_deep(text: str, resolver: _Resolver) -> bool:
    """Walk the events (cheap, no recursion) to bound the nesting before composing."""
    loader = _loader(text, resolver)
    depth = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > MAX_FAST_DEPTH:
                    return True
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    finally:
        loader.dispose()
    return False


def compose_fast(text: str) -> tuple[bool, Node | None]:
    """``(True, root)`` with the document's node graph (``root`` is ``None`` for an empty
    document), or ``(False, None)`` when the pure parser must compose this text."""
    if _CPARSER is None or _for_pure_parser(text):
        return False, None
    resolver = _Resolver()
    try:
        if _too_deep(text, resolver):
            return False, None
        loader = _loader(text, resolver)
        try:
            root: Node | None = loader.get_single_node()
        finally:
            loader.dispose()
    except Exception:
        # Any complaint (syntax, a reused or undefined anchor, a second document): the
        # pure parser reads it again and words the message.
        return False, None
    return True, root
