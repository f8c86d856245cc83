"""Durations and sizes pinned to exact values: a wrong but self-consistent unit table
would pass a load → dump → load property, so these name the numbers they expect."""

from __future__ import annotations

import pytest

from edge_agent.config.units import (
    MAX_DURATION_NS,
    MAX_SIZE_BYTES,
    format_duration,
    format_size,
    parse_duration,
    parse_size,
)

SECOND = 1_000_000_000


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1ns", 1),
        ("1us", 1_000),
        ("1ms", 1_000_000),
        ("1s", SECOND),
        ("1m", 60 * SECOND),
        ("1h", 3_600 * SECOND),
        ("1d", 86_400 * SECOND),
        ("500ms", SECOND // 2),
        ("1.5s", 1_500_000_000),
        (" 30s ", 30 * SECOND),
        ("1m30s", 90 * SECOND),  # the docstring's own example
        ("1h 30m", 5_400 * SECOND),
        ("2d12h", 216_000 * SECOND),
        ("0s", 0),
        ("366d", 366 * 86_400 * SECOND),
    ],
)
def test_durations_have_exact_values(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("5 sec", "not a duration"),
        ("5", "not a duration"),
        ("s", "not a duration"),
        ("1m30", "not a duration"),
        ("10:30", "clock time"),
        ("-5s", "not a duration"),
        ("367d", "longer than"),
        ("365d24h1s", "longer than"),
        ("9" * 40 + "s", "longer than"),
    ],
)
def test_malformed_or_absurd_durations_are_refused_with_why(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_duration(text)


@pytest.mark.parametrize("value", [60, 1.5, True, None, ["1s"]])
def test_a_duration_must_be_text_with_a_unit(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_the_longest_duration_is_a_leap_year() -> None:
    assert MAX_DURATION_NS == 366 * 86_400 * SECOND


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1500ns"),
        (2_000, "2us"),
        (SECOND // 2, "500ms"),
        (90 * SECOND, "90s"),
        (120 * SECOND, "2m"),
        (3_600 * SECOND, "1h"),
        (86_400 * SECOND, "1d"),
        (86_401 * SECOND, "86401s"),
    ],
)
def test_durations_format_to_the_shortest_exact_text(ns: int, text: str) -> None:
    assert format_duration(ns) == text


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0B", 0),
        ("1B", 1),
        ("1KB", 1_000),
        ("1MB", 1_000_000),
        ("1GB", 1_000_000_000),
        ("1KiB", 1_024),
        ("1MiB", 1_048_576),
        ("1GiB", 1_073_741_824),
        ("256mb", 256_000_000),
        ("1.5KB", 1_500),
        (" 2 MiB ", 2_097_152),
    ],
)
def test_sizes_have_exact_values(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("value", "why"),
    [("12", "not a size"), ("1TB", "not a size"), ("1 KBytes", "not a size"), ("1001GB", "larger")],
)
def test_malformed_or_absurd_sizes_are_refused_with_why(value: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_size(value)


def test_a_size_must_be_text_with_a_unit() -> None:
    with pytest.raises(ValueError, match="needs a unit"):
        parse_size(4096)
    assert MAX_SIZE_BYTES == 1_000_000_000_000


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (1, "1B"),
        (1_000, "1KB"),
        (2_000_000, "2MB"),
        (3_000_000_000, "3GB"),
        (1_024, "1KiB"),
        (1_048_576, "1MiB"),
        (1_073_741_824, "1GiB"),
        (1_023, "1023B"),
        (1_536, "1536B"),
        (3_072, "3KiB"),
    ],
)
def test_sizes_format_to_the_shortest_exact_text(size: int, text: str) -> None:
    assert format_size(size) == text


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (True, "true/false value"),
        (60, "needs a unit: write 60s"),
        (1.5, "needs a unit: write 1.5s"),
        (None, "such as 500ms"),
    ],
)
def test_a_duration_that_is_not_text_says_what_it_is(value: object, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "why"),
    [(True, "true/false value"), (4096, "needs a unit: write 4096B"), (None, "such as 256MB")],
)
def test_a_size_that_is_not_text_says_what_it_is(value: object, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_size(value)


def test_a_long_value_is_quoted_cut_to_forty_characters() -> None:
    forty = "x" * 40
    with pytest.raises(ValueError) as caught:
        parse_duration(forty)
    assert str(caught.value).startswith(repr(forty) + " is not a duration")
    with pytest.raises(ValueError) as caught:
        parse_duration("y" * 41)
    assert str(caught.value).startswith(repr("y" * 37 + "...") + " is not a duration")


def test_a_size_of_thirty_one_digits_is_refused_and_the_largest_size_is_accepted() -> None:
    with pytest.raises(ValueError, match="larger than"):
        parse_size("1" * 31 + "B")
    assert parse_size(f"{MAX_SIZE_BYTES}B") == MAX_SIZE_BYTES
    with pytest.raises(ValueError, match="larger than"):
        parse_size(f"{MAX_SIZE_BYTES + 1}B")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), -5, -0.5])
def test_a_bare_number_that_no_unit_can_mend_is_not_offered_one(value: float) -> None:
    """YAML `.nan`, `.inf`, `1e400` (infinity) or `-5`: "write nans" would be nonsense."""
    with pytest.raises(ValueError, match="is not a duration") as caught:
        parse_duration(value)
    assert "bare number" not in str(caught.value)
