"""``edge-agent simulate set HOST:PORT NAME VALUE`` and ``... --profile FILE``: drive a
running simulator through its control endpoint (:mod:`.control`).

A profile is a text file of steps, run in time order from the moment the command starts::

    # rehearse the P-101 vibration rule
    at 0s   p101_vibration 9.5
    at 30s  p101_vibration 2.5
    at 45s  p101_vibration release     # back to the normal profile
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from edge_agent.common.time_units import NS_PER_DAY, NS_PER_S
from edge_agent.config.units import parse_duration

MAX_PROFILE_BYTES: Final = 1 << 20
MAX_STEPS: Final = 10_000
MAX_AT_NS: Final = 7 * NS_PER_DAY  # a week: a rehearsal, not a season
REQUEST_TIMEOUT_S: Final = 5.0


class ProfileError(ValueError):
    """A profile line that cannot be run (the message names file and line)."""


@dataclass(frozen=True)
class Step:
    at_ns: int
    name: str
    value: float | bool | None
    where: str = ""  # ``FILE:LINE`` of a profile step


def parse_value_text(text: str) -> float | bool | None:
    """``9.5``, ``true``/``false``, ``release``."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "release":
        return None
    if "," in text:
        raise ValueError(f"{text!r}: use a dot for decimals")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number, true, false or release") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def parse_profile(text: str, source: str = "profile") -> list[Step]:
    """The steps of a profile, sorted by time (stable: same-time steps keep file order)."""
    steps: list[Step] = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        where = f"{source}:{number}"
        if words[0] != "at" or len(words) != 4:
            raise ProfileError(f"{where}: expected 'at TIME NAME VALUE', got {line.strip()!r}")
        try:
            at_ns = parse_duration(words[1])
            value = parse_value_text(words[3])
        except ValueError as exc:
            raise ProfileError(f"{where}: {exc}") from None
        if not 0 <= at_ns <= MAX_AT_NS:
            raise ProfileError(f"{where}: time must be between 0s and 168h")
        steps.append(Step(at_ns, words[2], value, where))
        if len(steps) > MAX_STEPS:
            raise ProfileError(f"{source}: more than {MAX_STEPS} steps")
    return sorted(steps, key=lambda step: step.at_ns)


def _base_url(endpoint: str) -> str:
    endpoint = endpoint.removeprefix("http://").rstrip("/")
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"endpoint {endpoint!r}: expected HOST:PORT (printed by the simulator)")
    return f"http://{endpoint}"


def send(endpoint: str, name: str, value: float | bool | None) -> None:
    """One ``POST /set``; raises ValueError with the simulator's words on refusal and
    OSError when nobody answers."""
    import httpx

    try:
        response = httpx.post(
            _base_url(endpoint) + "/set",
            json={"name": name, "value": value},
            timeout=REQUEST_TIMEOUT_S,
        )
    except httpx.HTTPError as exc:
        raise OSError(str(exc) or type(exc).__name__) from None
    if response.status_code != 200:
        try:
            reason = str(response.json().get("error"))
        except ValueError:
            reason = f"HTTP {response.status_code}"
        raise ValueError(reason)


def points(endpoint: str) -> dict[str, str]:
    """The simulator's settable points (``GET /points``): name -> type."""
    import httpx

    try:
        response = httpx.get(_base_url(endpoint) + "/points", timeout=REQUEST_TIMEOUT_S)
        entries = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as exc:
        raise OSError(str(exc) or type(exc).__name__) from None
    if not isinstance(entries, list):
        raise OSError(f"GET /points answered HTTP {response.status_code}")
    return {
        str(entry["name"]): str(entry.get("type", ""))
        for entry in entries
        if isinstance(entry, dict) and "name" in entry
    }


def check_steps(steps: list[Step], known: dict[str, str]) -> None:
    """Refuse a profile step the simulator would refuse, before anything is sent: an
    unknown point, a number for a bit, true/false for a register."""
    for step in steps:
        kind = known.get(step.name)
        if kind is None:
            names = ", ".join(list(known)[:20])
            raise ProfileError(f"{step.where}: no point {step.name!r}; known: {names}")
        is_bit = kind == "bool"
        if step.value is not None and isinstance(step.value, bool) != is_bit:
            raise ProfileError(
                f"{step.where}: {step.name} is a bit: true, false or release"
                if is_bit
                else f"{step.where}: {step.name} takes a number or release"
            )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("endpoint", help="the simulator's control HOST:PORT (it prints it)")
    parser.add_argument("name", nargs="?", help="point name (see 'simulate modbus --list')")
    parser.add_argument("value", nargs="?", help="number, true, false, or release")
    parser.add_argument("--profile", type=Path, help="a file of 'at TIME NAME VALUE' lines")


def _fail(message: str) -> int:
    print(f"edge-agent simulate set: {message}", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    try:
        if args.profile is not None:
            if args.name is not None:
                return _fail("give NAME VALUE or --profile FILE, not both")
            with args.profile.open("rb") as handle:
                data = handle.read(MAX_PROFILE_BYTES + 1)
            if len(data) > MAX_PROFILE_BYTES:
                return _fail(f"{args.profile}: larger than {MAX_PROFILE_BYTES} bytes")
            steps = parse_profile(data.decode("utf-8"), str(args.profile))
        elif args.name is None or args.value is None:
            return _fail("give NAME VALUE, or --profile FILE")
        else:
            steps = [Step(0, args.name, parse_value_text(args.value))]
        _base_url(args.endpoint)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return _fail(str(exc))
    if args.profile is not None:
        try:
            check_steps(steps, points(args.endpoint))
        except ProfileError as exc:
            return _fail(str(exc))
        except OSError as exc:
            return _fail(f"no simulator answers on {args.endpoint}: {exc}")
    started = time.monotonic()
    for step in steps:
        wait = started + step.at_ns / NS_PER_S - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        shown = "release" if step.value is None else json.dumps(step.value)
        try:
            send(args.endpoint, step.name, step.value)
        except ValueError as exc:
            return _fail(f"{step.name} {shown}: {exc}")
        except OSError as exc:
            return _fail(f"no simulator answers on {args.endpoint}: {exc}")
        print(f"{step.at_ns / NS_PER_S:g}s {step.name} = {shown}", flush=True)
    return 0
