"""Absurd durations, sizes and dates in otherwise valid site files.

Invariants: `validate` reports them as `file:line:col: error: path: message` lines (never
a traceback, never an "internal error"); the loader `run` uses refuses the file with a
ConfigError (never an exception of another kind), so `run` exits with the config status
instead of crashing later (a `due_in: 99999999d` once crashed the rules task)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.cli import main
from edge_agent.config.diagnostics import ConfigError
from edge_agent.config.loader import load_site

BROKEN = Path(__file__).parent.parent / "config" / "broken"
# A valid site (the corpus' base), with one value replaced per example.
BASE = (BROKEN / "poll-too-long.yaml").read_text().replace("poll: 600m", "poll: 1s")
LINE = re.compile(r"^.+:\d+:\d+: (error|warning): \S+: .+$")

# Where a duration, a size or a date-like value may be written, as a replacement of a line
# of BASE: (old, template with {}).
PLACES = [
    ("    poll: 1s\n  ua1:", "    poll: {}\n  ua1:"),
    ("  stale_after: 2m", "  stale_after: {}"),
    ("    on_delay: 60s", "    on_delay: {}"),
    ("    off_delay: 2m", "    off_delay: {}\n    cooldown: {}"),
    ("      categories: [CORRECTIVE]", "      categories: [CORRECTIVE]\n      due_in: {}"),
    ("max_bytes: 256MB", "max_bytes: {}"),
    ("    backoff: {initial: 500ms, max: 30s}", "    backoff: {{initial: 500ms, max: {}}}"),
]
UNITS = ["ns", "us", "ms", "s", "m", "h", "d", "B", "KB", "MB", "GB", "GiB"]
NUMBERS = st.one_of(
    st.integers(0, 10**40).map(str),
    st.floats(0, 1e300, allow_nan=False, allow_infinity=False).map(lambda f: f"{f:f}"),
    st.text("0123456789", min_size=1, max_size=500),
)
VALUES = st.one_of(
    st.builds(lambda n, u: f"{n}{u}", NUMBERS, st.sampled_from(UNITS)),
    st.dates().map(str),  # a YAML date where a duration goes
    st.datetimes().map(lambda d: d.isoformat()),
    st.just("9999-12-31T23:59:59Z"),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from([".inf", "-.inf", ".nan", "1e999s", "-5s", "0B", "1B", "1d1d1d1d1d1d1d"]),
)


def site_with(place: tuple[str, str], value: str) -> str:
    old, new = place
    assert old in BASE
    return BASE.replace(old, new.format(value, value), 1)


@settings(max_examples=120, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(place=st.sampled_from(PLACES), value=VALUES)
def test_absurd_values_are_reported_in_the_usual_form(
    place: tuple[str, str], value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(site_with(place, value))
    (tmp_path / "pki").mkdir(exist_ok=True)  # validate opens the CA file the site names
    (tmp_path / "pki" / "ca.pem").write_bytes((BROKEN / "pki" / "ca.pem").read_bytes())
    code = main(["validate", str(site)])
    out, err = capsys.readouterr()
    assert code in (0, 1)
    assert "Traceback" not in out + err and "internal error" not in out, out
    for line in out.splitlines():
        assert LINE.match(line), line
        assert len(line) < 600, line  # a value is quoted short, never echoed whole
    try:
        load_site(site)
    except ConfigError:
        assert code == 1
    else:
        assert code == 0


def test_run_refuses_a_due_in_past_year_9999_before_starting(tmp_path: Path) -> None:
    """The issue's reproduction: the rule validated and its rendering crashed later."""
    site = tmp_path / "site.yaml"
    site.write_text(site_with(PLACES[4], "99999999d"))
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent", "run", str(site)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "rules[0].work_order.due_in: '99999999d' is longer than 366d" in done.stderr


def test_run_refuses_storage_of_zero_bytes(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(site_with(PLACES[5], "0B"))
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent", "run", str(site)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "storage.max_bytes: `max_bytes` 0B is less than 1KB" in done.stderr
