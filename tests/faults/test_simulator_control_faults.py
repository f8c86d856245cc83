"""The simulators' control endpoint and `simulate set` profiles are boundaries: bad input
gets a clear refusal, never a crash or a value the point cannot hold (issue 21 §4)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from edge_agent.simulators.control import ControlServer
from edge_agent.simulators.control_client import (
    MAX_PROFILE_BYTES,
    ProfileError,
    parse_profile,
    parse_value_text,
    run,
)
from edge_agent.simulators.modbus import ModbusPlant, control_setter, point_map


async def test_the_control_endpoint_refuses_bad_requests_and_keeps_serving() -> None:
    plant = ModbusPlant(profiles=False)  # the datastore only: no listener needed
    control = ControlServer(point_map(), control_setter(plant), "127.0.0.1", 0)
    await control.start()
    base = f"http://127.0.0.1:{control.port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            cases = [
                (b"not json", 400, "Expecting value"),
                (b'["p101_vibration", 1]', 400, "the body must be"),
                (b'{"name": "p101_vibration", "value": NaN}', 400, "finite number"),
                (b'{"name": "p101_vibration", "value": "9"}', 400, "finite number"),
                (b'{"name": "p101_running", "value": 1}', 400, "true or false"),
                (b'{"name": "p101_vibration", "value": true}', 400, "takes a number"),
                (b'{"name": "nosuch", "value": 1}', 404, "no point 'nosuch'"),
                (b'{"name": "p101_vibration", "value": 1e300}', 400, "cannot"),
            ]
            for body, status, words in cases:
                response = await client.post("/set", content=body)
                assert response.status_code == status, (body, response.text)
                assert words in response.json()["error"], (body, response.text)
            too_big = await client.post("/set", content=b" " * 10_000)
            assert too_big.status_code == 413
            assert (await client.get("/set")).status_code == 405
            assert (await client.get("/nowhere")).status_code == 404
            ok = await client.post("/set", json={"name": "p101_vibration", "value": 9.5})
            assert ok.status_code == 200
            points = (await client.get("/points")).json()
            assert [p["name"] for p in points][:2] == ["p101_vibration", "p101_pressure"]
        assert plant.get_registers("holding", 0, 1) == [950]
    finally:
        await control.close()


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("p101_vibration 9", "expected 'at TIME NAME VALUE'"),
        ("at 5 p101_vibration 9", "with a unit"),
        ("at 1s p101_vibration 48,5", "use a dot"),
        ("at 1s p101_vibration hot", "not a number"),
        ("at 1s p101_vibration inf", "finite"),
        ("at 200h p101_vibration 1", "between 0s and 168h"),
    ],
)
def test_a_bad_profile_line_is_named_by_file_and_line(line: str, words: str) -> None:
    with pytest.raises(ProfileError) as caught:
        parse_profile(f"# header\n{line}\n", "rehearsal.txt")
    assert str(caught.value).startswith("rehearsal.txt:2: ")
    assert words in str(caught.value)


def test_profile_steps_run_in_time_order_and_values_parse() -> None:
    steps = parse_profile("at 2s a 1\nat 0s b true\nat 2s a release\n")
    assert [(s.at_ns, s.name, s.value) for s in steps] == [
        (0, "b", True),
        (2_000_000_000, "a", 1.0),
        (2_000_000_000, "a", None),
    ]
    assert parse_value_text("FALSE") is False


def test_an_oversized_or_missing_profile_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    big = tmp_path / "big.txt"
    big.write_bytes(b"#" * (MAX_PROFILE_BYTES + 1))
    for path in (big, tmp_path / "missing.txt"):
        args = argparse.Namespace(endpoint="127.0.0.1:9", name=None, value=None, profile=path)
        assert run(args) == 1
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2
    assert "larger than" in errors[0] and "missing.txt" in errors[1]


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("at 2s p101_vibrations 6.9", "no point 'p101_vibrations'; known: p101_vibration"),
        ("at 2s p101_running 3", "p101_running is a bit: true, false or release"),
        ("at 2s p101_vibration true", "p101_vibration takes a number or release"),
    ],
)
async def test_a_profile_naming_a_point_the_simulator_lacks_is_refused_before_any_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, words: str
) -> None:
    """docs/simulators.md: "A bad line is refused before anything is sent, naming the file
    and line". A typo in a point name on line 2 sent line 1 (holding the point) and then
    stopped with no line number."""
    import argparse
    import asyncio

    plant = ModbusPlant(profiles=False)
    control = ControlServer(point_map(), control_setter(plant), "127.0.0.1", 0)
    await control.start()
    profile = tmp_path / "rehearsal.txt"
    profile.write_text(f"at 0s p101_vibration 7.3\n{line}\n", encoding="utf-8")
    args = argparse.Namespace(
        endpoint=f"127.0.0.1:{control.port}", name=None, value=None, profile=profile
    )
    try:
        assert await asyncio.to_thread(run, args) == 1
    finally:
        await control.close()
    out, err = capsys.readouterr()
    assert out == ""  # nothing was sent
    assert err.startswith(f"edge-agent simulate set: {profile}:2: {words}"), err
