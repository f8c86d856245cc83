"""The YAML parser's errors said plainly: a site file is typed by people over SSH, and the
parser's own words ("expected <block end>, but found '?'") explain nothing to them."""

from __future__ import annotations

import re
from typing import Final

from ruamel.yaml.error import MarkedYAMLError, YAMLError

from edge_agent.config.diagnostics import ConfigError, Diagnostic


def file_problem(file: str, message: str, line: int = 1, col: int = 1) -> ConfigError:
    """One error about ``file`` as a whole, as the :class:`ConfigError` to raise."""
    return ConfigError([Diagnostic(file, line, col, "error", (), message)])


_HINTS: Final = (
    ("found character '\\t'", "tabs cannot indent YAML: use spaces"),
    (
        "mapping values are not allowed here",
        "a ': ' inside a value needs quotes, or the indentation is off",
    ),
    ("could not find expected ':'", "a key needs ':' after it, or the indentation is off"),
    ("found undefined alias", "an alias (*name) needs its anchor (&name) earlier in the file"),
    (
        "expected <block end>, but found '?'",
        "a list item (`- `) and a key (`name:`) cannot share one indentation; "
        "indent the list under its key, or remove the `- `",
    ),
    (
        "expected <block end>",
        "this line is indented differently from the lines before it; keys of one "
        "mapping start in the same column",
    ),
)


def _plain_words(exc: YAMLError, text: str) -> tuple[str, int, int] | None:
    """The commonest syntax slips said plainly, placed where the fix goes: an unclosed
    quote or bracket at its opening, a missing comma at the next entry."""
    if not isinstance(exc, MarkedYAMLError) or exc.problem_mark is None:
        return None
    here = exc.problem_mark.line + 1, exc.problem_mark.column + 1
    opened = exc.context_mark
    start = (opened.line + 1, opened.column + 1) if opened is not None else here
    if "end of stream" in text and "quoted scalar" in text:
        return "this quoted text is never closed: add the closing quote", *start
    if "<stream end>" in text and "flow mapping" in text:
        return "this `{` is never closed: add `}`", *start
    if "<stream end>" in text and "flow sequence" in text:
        return "this `[` is never closed: add `]`", *start
    if "while parsing a flow" in text and "expected ','" in text:
        opener, closer = ("{", "}") if "flow mapping" in text else ("[", "]")
        return (
            f"a ',' or '{closer}' is missing before this (the `{opener}` opened at line "
            f"{start[0]}): entries are separated by ', ' (and a ' inside '...' is written '')",
            *here,
        )
    if "cannot start any token" in text:
        char = re.search(r"found character '(.+?)'", text)
        if char and char.group(1) in ("@", "`", "%"):
            return f"a value cannot start with {char.group(1)}: put it in quotes", *here
    return None


def yaml_problem(display: str, exc: YAMLError, source: str) -> ConfigError:
    """The parser's error as one line a person can act on, placed where the fix goes."""
    if isinstance(exc, MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        line, col = mark.line + 1, mark.column + 1
        text = exc.problem or "YAML syntax error"
        if exc.context:
            text = f"{text} ({exc.context})"
    else:
        line, col, text = 1, 1, str(exc).splitlines()[0] if str(exc) else "YAML error"
    if "another document" in text:
        text = "a second document starts here; a site file holds one: remove the '---' line"
    lines = source.splitlines()
    written = lines[line - 1] if 0 < line <= len(lines) else ""
    plain = _plain_words(exc, text)
    if "flow" in text and "${" in written:
        text += ': inside { } or [ ], quote a secret reference: "${NAME}"'
    elif plain is not None:
        text, line, col = plain
    else:
        for needle, hint in _HINTS:
            if needle in text:
                # The parser's words for a misindented line ("expected <block end>, but
                # found '<block mapping start>'") explain nothing: say it plainly instead.
                text = hint if "<block end>" in needle else f"{text}: {hint}"
                break
    return file_problem(display, f"not valid YAML: {text}", line, col)
