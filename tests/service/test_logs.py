"""Logging: one JSON event per line off a terminal, text on one, secrets never shown."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator

import pytest

from edge_agent.common.logs import configure_logging
from edge_agent.redaction import register_secret

SECRET = "mx-live-9f8e7d6c5b4a"


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    configure_logging("info", "auto", stream)
    log = logging.getLogger("edge_agent.test")
    log.info("Connected.", extra={"connection": "plc1", "attempt": 2})
    log.warning("Two\nlines in one event.")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "Connected."
    assert first["connection"] == "plc1" and first["attempt"] == 2
    assert first["level"] == "info" and first["logger"] == "edge_agent.test"
    assert second["message"] == "Two\nlines in one event."


def test_text_on_a_terminal() -> None:
    primary, secondary = os.openpty()
    try:
        with open(secondary, "w", closefd=False) as tty:
            configure_logging("info", "auto", tty)
            logging.getLogger("edge_agent.test").info("Hello.", extra={"connection": "plc1"})
            tty.flush()
        out = os.read(primary, 4096).decode()
    finally:
        os.close(primary)
        os.close(secondary)
    assert "INFO" in out and "edge_agent.test: Hello. connection=plc1" in out
    assert not out.lstrip().startswith("{")


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_registered_secrets_never_appear(fmt: str) -> None:
    stream = io.StringIO()
    configure_logging("debug", fmt, stream)
    register_secret(SECRET)
    log = logging.getLogger("somewhere.else")
    log.info("key is %s", SECRET)
    log.info(f"Bearer {SECRET}")
    log.info("Request.", extra={"headers": {"Authorization": f"Bearer {SECRET}"}, "n": [SECRET]})
    try:
        raise RuntimeError(f"refused {SECRET}")
    except RuntimeError:
        log.exception("Failed.")
    text = stream.getvalue()
    assert SECRET not in text
    assert text.count("***") >= 5
    assert len(text.splitlines()) == 4


def test_repeated_lines_are_limited_then_summarised() -> None:
    """A failure repeating thousands of times a second writes ``burst`` lines per interval
    and one summary, in the same JSON format; other messages are not held back."""
    from edge_agent.common.logs import JsonFormatter, RepeatLimiter

    stream = io.StringIO()
    now = [0.0]
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RepeatLimiter(handler, burst=5, interval_s=10.0, clock=lambda: now[0]))
    log = logging.getLogger("edge_agent.test.flood")
    log.addHandler(handler)
    log.propagate = False
    try:
        for attempt in range(10_000):
            log.error("Accept failed.", extra={"attempt": attempt})
        log.warning("Something else.")
        now[0] = 11.0
        log.error("Accept failed.", extra={"attempt": -1})
    finally:
        log.removeHandler(handler)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["message"] for e in events] == [
        *["Accept failed."] * 5,
        "Something else.",
        "Repeated log lines suppressed.",
        "Accept failed.",
    ]
    summary = events[6]
    assert summary["suppressed"] == 9_995 and summary["level"] == "error"
    assert summary["suppressed_logger"] == "edge_agent.test.flood"
    assert summary["suppressed_message"] == "Accept failed."
