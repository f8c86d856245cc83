"""`edge-agent discover opcua` against the project's OPC UA simulator with 10,000 more
variables, and a corner of odd nodes added to it: a unit, text and unreadable variables,
two names that make one id, a reference loop (issue 15)."""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from ruamel.yaml import YAML

from edge_agent.cli import main
from edge_agent.commands import discover
from edge_agent.simulators.opcua import OpcUaSimulator

pytestmark = pytest.mark.asyncio(loop_scope="module")

NODES = 10_000


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim() -> AsyncIterator[OpcUaSimulator]:
    from asyncua import ua

    simulator = OpcUaSimulator(nodes=NODES, update_interval_s=5.0)
    await simulator.start()
    server = simulator._server
    ns = simulator.namespace_index
    odd = await server.nodes.objects.add_folder(ua.NodeId("Odd", ns), "Odd")
    temp = await odd.add_variable(ua.NodeId("Odd.Temp", ns), "Temp", 21.5)
    await temp.add_property(
        ua.NodeId("Odd.Temp.EU", ns),
        "EngineeringUnits",
        ua.EUInformation(DisplayName=ua.LocalizedText("degC"), UnitId=4408652),
    )
    await odd.add_variable(ua.NodeId("Odd.Running", ns), "Running", True)
    await odd.add_variable(ua.NodeId("Odd.Name", ns), "Name", "pump")
    hidden = await odd.add_variable(ua.NodeId("Odd.Hidden", ns), "Hidden", 1.0)
    await hidden.write_attribute(
        ua.AttributeIds.AccessLevel, ua.DataValue(ua.Variant(0, ua.VariantType.Byte))
    )
    await odd.add_variable(ua.NodeId("Odd.FlowA", ns), "Flow Rate", 1.0)
    await odd.add_variable(ua.NodeId("Odd.FlowB", ns), "Flow-Rate", 2.0)
    loop = await odd.add_folder(ua.NodeId("Odd.Loop", ns), "Loop")
    # A loop back to its parent, and a second parent for Temp: each node is listed once.
    await loop.add_reference(odd.nodeid, ua.ObjectIds.HasComponent, bidirectional=False)
    await loop.add_reference(temp.nodeid, ua.ObjectIds.Organizes, bidirectional=False)
    # Node ids as servers write them: `;`, spaces, accents, and a line break no site file holds.
    odder = await server.nodes.objects.add_folder(ua.NodeId("Odder", ns), "Odder")
    for number, identifier in enumerate(["a;b=c", "with space", "Température", "line\nbreak"]):
        await odder.add_variable(ua.NodeId(identifier, ns), f"V{number}", float(number))
    try:
        yield simulator
    finally:
        await simulator.close()


def args(endpoint: str, **extra: Any) -> argparse.Namespace:
    values: dict[str, Any] = {
        "kind": "opcua",
        "endpoint": endpoint,
        "site": None,
        "connection": None,
        "root": "i=85",
        "depth": 10,
        "filter": [],
        "standard_nodes": False,
        "mode": "subscribe",
        "name": "ua1",
        "output": None,
    }
    values.update(extra)
    return argparse.Namespace(**values)


async def walk_of(sim: OpcUaSimulator, **extra: Any) -> Any:
    from edge_agent.config.models import OpcUa

    config = OpcUa.model_validate({"protocol": "opcua", "endpoint": sim.endpoint})
    return await discover._discover(config, Path(), args(sim.endpoint, **extra), io.StringIO())


async def test_ten_thousand_variables_are_found_once_each(sim: OpcUaSimulator) -> None:
    started = time.monotonic()
    found = await walk_of(sim, filter=["Bench/*"])
    elapsed = time.monotonic() - started
    nodes = [v.node for v in found.variables]
    assert len(nodes) == len(set(nodes)) == NODES
    assert found.skipped == [] and not found.truncated
    print(f"\ndiscover: {NODES} variables in {elapsed:.1f} s ({found.visited} nodes browsed)")


async def test_the_odd_corner_units_skips_ids_and_a_loop(sim: OpcUaSimulator) -> None:
    found = await walk_of(sim, filter=["Odd/*"])
    by_path = {"/".join(v.path): v for v in found.variables}
    assert set(by_path) == {"Odd/Temp", "Odd/Running", "Odd/Flow Rate", "Odd/Flow-Rate"}
    assert (by_path["Odd/Temp"].unit, by_path["Odd/Temp"].data_type) == ("degC", "Double")
    assert by_path["Odd/Running"].data_type == "Boolean"
    assert sorted(found.skipped) == [
        ("Odd/Hidden", "not readable (AccessLevel)"),
        ("Odd/Name", "type String is not a number or a boolean"),
    ]
    document = YAML(typ="safe").load(discover._document(found, _config(sim), args(sim.endpoint)))
    sensors = document["sensors"]
    ids = sorted(sensors)
    # Two names that make one id: the second gets a short hash of its node id, every time.
    assert ids[:2] == ["odd_flow_rate", ids[1]] and ids[1].startswith("odd_flow_rate_")
    assert sensors["odd_temp"] == {
        "connection": "ua1",
        "node": f"ns={sim.namespace_index};s=Odd.Temp",
        "unit": "degC",
        "description": "Odd/Temp (Double)",
    }
    again = YAML(typ="safe").load(discover._document(found, _config(sim), args(sim.endpoint)))
    assert again == document


async def test_the_fragment_validates_and_reads_as_written(
    sim: OpcUaSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command as an installer runs it: the fragment, included from a site file, passes
    `validate`, and `read` gets a good value from every sensor it names."""
    import asyncio

    fragment = tmp_path / "discovered.yaml"
    code = await asyncio.to_thread(
        main,
        ["discover", "opcua", sim.endpoint, "--filter", "Line1/*", "-o", str(fragment)],
    )
    assert code == 0, capsys.readouterr().err
    assert "3 sensors, 0 skipped" in capsys.readouterr().err
    site = tmp_path / "site.yaml"
    site.write_text(
        "version: 1\nsite: {id: plant-9, name: Plant 9}\ninclude: [discovered.yaml]\n"
        "forwarding: {mode: maintainx, maintainx: {api_key: '${MAINTAINX_API_KEY}'}}\n"
    )
    assert await asyncio.to_thread(main, ["validate", "--skip-host-checks", str(site)]) == 0
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["read", str(site)]) == 0, capsys.readouterr().err
    assert "line1_p101_bearingtemp" in capsys.readouterr().out


async def test_odd_node_ids_validate_and_read_or_are_skipped_with_why(
    sim: OpcUaSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    fragment = tmp_path / "discovered.yaml"
    argv = ["discover", "opcua", sim.endpoint, "--filter", "Odder/*", "-o", str(fragment)]
    assert await asyncio.to_thread(main, argv) == 0
    err = capsys.readouterr().err
    assert "skipped Odder/V3: its node id cannot be written in a site file" in err
    assert "3 sensors, 1 skipped" in err
    site = tmp_path / "site.yaml"
    site.write_text(
        "version: 1\nsite: {id: plant-9, name: Plant 9}\ninclude: [discovered.yaml]\n"
        "forwarding: {mode: maintainx, maintainx: {api_key: '${MAINTAINX_API_KEY}'}}\n"
    )
    code = await asyncio.to_thread(main, ["validate", "--skip-host-checks", str(site)])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["read", "--json", str(site)]) == 0
    out = capsys.readouterr().out
    assert out.count('"good"') == 3 and "Température" in fragment.read_text()


async def test_a_site_files_connection_is_used_as_it_is(
    sim: OpcUaSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--site --connection` takes that connection (endpoint, security, user) and prints only
    sensors on it: the connection is in the site file already."""
    import asyncio

    site = tmp_path / "site.yaml"
    site.write_text(
        "version: 1\nsite: {id: plant-9, name: Plant 9}\n"
        f"connections:\n  line: {{protocol: opcua, endpoint: '{sim.endpoint}'}}\n"
        "forwarding: {mode: maintainx, maintainx: {api_key: '${MAINTAINX_API_KEY}'}}\n"
    )
    argv = ["discover", "opcua", "--site", str(site), "--connection", "line", "--filter", "Odd/T*"]
    assert await asyncio.to_thread(main, argv) == 0
    document = YAML(typ="safe").load(capsys.readouterr().out)
    assert list(document) == ["sensors"]
    assert document["sensors"]["odd_temp"]["connection"] == "line"
    argv[5] = "nope"
    assert await asyncio.to_thread(main, argv) == 2
    assert "has no OPC UA connection 'nope' (it has: line)" in capsys.readouterr().err


async def test_an_output_in_a_folder_that_is_not_there_is_refused_before_browsing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    out = tmp_path / "sensors" / "discovered.yaml"
    argv = ["discover", "opcua", "opc.tcp://127.0.0.1:1/none", "-o", str(out)]
    assert await asyncio.to_thread(main, argv) == 2
    assert f"{out}: no folder {out.parent}" in capsys.readouterr().err


async def test_a_root_that_is_not_a_node_id_or_not_there_is_said(
    sim: OpcUaSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    argv = ["discover", "opcua", sim.endpoint, "--root", "garbage"]
    assert await asyncio.to_thread(main, argv) == 2
    assert "--root 'garbage' is not a node id" in capsys.readouterr().err
    argv[-1] = f"ns={sim.namespace_index};s=NoSuchFolder"
    assert await asyncio.to_thread(main, argv) == 1
    err = capsys.readouterr().err
    assert f"--root {argv[-1]}: " in err and "BadNodeIdUnknown" in err and "0 sensors" not in err


async def test_on_a_terminal_the_progress_line_is_ended_before_the_skipped_list(
    sim: OpcUaSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import sys

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert (
        await asyncio.to_thread(main, ["discover", "opcua", sim.endpoint, "--filter", "Odd/*"]) == 0
    )
    lines = terminal.getvalue().split("\n")
    assert lines[0].startswith("\rdiscover: ") and "skipped" not in lines[0]
    assert lines[1].startswith("skipped Odd/")


async def test_a_server_that_reads_few_nodes_at_a_time_is_read_within_its_limit(
    sim: OpcUaSimulator,
) -> None:
    """A PLC's server refuses a Read of more than its MaxNodesPerRead
    (BadTooManyOperations): discover reads in chunks the server advertises."""
    await sim.set_max_nodes_per_read(64)
    try:
        found = await walk_of(sim, filter=["Bench/*"])
    finally:
        await sim.set_max_nodes_per_read(0)
    assert len(found.variables) == NODES and found.skipped == []


async def test_discover_again_with_the_site_adds_only_what_is_new_and_validates(
    sim: OpcUaSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run again with `--site` after the first import: a node the site file reads already is
    skipped, an id it has already is not made twice, so the fragment included validates."""
    import asyncio

    ns = sim.namespace_index
    site = tmp_path / "site.yaml"
    site.write_text(
        "version: 1\nsite: {id: plant-9, name: Plant 9}\ninclude: [more.yaml]\n"
        f"connections:\n  line: {{protocol: opcua, endpoint: '{sim.endpoint}'}}\n"
        "sensors:\n"
        f"  temp: {{connection: line, node: 'ns={ns};s=Odd.Temp'}}\n"
        f"  odd_running: {{connection: line, node: 'ns={ns};s=Line1.P101.BearingTemp'}}\n"
        "forwarding: {mode: maintainx, maintainx: {api_key: '${MAINTAINX_API_KEY}'}}\n"
    )
    (tmp_path / "more.yaml").write_text("sensors: {}\n")
    argv = ["discover", "opcua", "--site", str(site), "--connection", "line", "--filter", "Odd/*"]
    assert await asyncio.to_thread(main, argv) == 0
    captured = capsys.readouterr()
    assert f"skipped Odd/Temp: already in {site} as temp" in captured.err
    sensors = YAML(typ="safe").load(captured.out)["sensors"]
    assert f"ns={ns};s=Odd.Temp" not in [s["node"] for s in sensors.values()]
    assert "odd_running" not in sensors and any(k.startswith("odd_running_") for k in sensors)
    (tmp_path / "more.yaml").write_text(captured.out)
    code = await asyncio.to_thread(main, ["validate", "--skip-host-checks", str(site)])
    assert code == 0, capsys.readouterr().err


async def test_a_wrong_endpoint_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    code = await asyncio.to_thread(main, ["discover", "opcua", "opc.tcp://127.0.0.1:1/none"])
    assert code == 1
    err = capsys.readouterr().err
    assert "edge-agent discover: opc.tcp://127.0.0.1:1/none:" in err and "Traceback" not in err


def _config(sim: OpcUaSimulator) -> Any:
    from edge_agent.config.models import OpcUa

    return OpcUa.model_validate({"protocol": "opcua", "endpoint": sim.endpoint})
