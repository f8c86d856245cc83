"""The lean publish decoder against a real asyncua server: values a server
really sends (picoseconds, integers, booleans, text, bad and uncertain statuses, the 1601
and 9999 timestamp bounds) reach the agent as the general path reads asyncua's own
DataValue; a secured channel (Sign, SignAndEncrypt) still publishes through the lean
path; every new session after a reconnect gets the lean publish again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asyncua import ua

from edge_agent.config.models import Defaults, Sensor
from edge_agent.simulators.opcua import SERVER_APPLICATION_URI, OpcUaSimulator, SimulatorSecurity
from edge_agent.sources.opcua import lean_publish
from edge_agent.sources.opcua.certs import generate_self_signed
from edge_agent.sources.opcua.source import OpcUaSource
from edge_agent.sources.opcua.values import DataValues

from .conftest import Collector, connection, running, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

NODES = 12
CLIENT_URI = "urn:edge-agent:client"


@dataclass
class Pki:
    root: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki-lean")
    generate_self_signed(root / "server.pem", root / "server.key", SERVER_APPLICATION_URI)
    generate_self_signed(root / "client.pem", root / "client.key", CLIENT_URI)
    return Pki(root)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim(pki: Pki) -> AsyncIterator[OpcUaSimulator]:
    simulator = OpcUaSimulator(
        nodes=NODES,
        security=SimulatorSecurity(
            certificate=pki.root / "server.pem",
            private_key=pki.root / "server.key",
            trusted_clients=[pki.root / "client.pem"],
            policies=("Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt"),
            allow_none=True,
        ),
    )
    await simulator.start()
    # One node of each case's own data type (the simulator's bench nodes are Doubles).
    server: Any = simulator._server
    objects = server.nodes.objects
    for index, (variant, *_rest) in enumerate(CASES):
        node_id = ua.NodeId(f"lean.{index}", simulator.namespace_index)
        await objects.add_variable(node_id, f"lean.{index}", _first(variant))
    try:
        yield simulator
    finally:
        await simulator.close()


def _sensors(sim: OpcUaSimulator) -> dict[str, Sensor]:
    return {
        f"b{i:02d}": Sensor.model_validate(
            {"connection": "ua1", "node": f"ns={sim.namespace_index};s=lean.{i}"}
        )
        for i in range(len(CASES))
    }


def _source(sim: OpcUaSimulator, pki: Pki, **security: Any) -> OpcUaSource:
    extra: dict[str, Any] = {}
    if security:
        extra["security"] = {
            "certificate": "client.pem",
            "private_key": "client.key",
            "server_certificate": "server.pem",
            "application_uri": CLIENT_URI,
            **security,
        }
    conn = connection(sim.endpoint, mode="subscribe", sampling_interval="50ms", **extra)
    return OpcUaSource("ua1", conn, _sensors(sim), Defaults(), pki.root)


class _Watch:
    """Counts the responses each decoder decoded (lean with data changes, asyncua's)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.lean = 0
        self.installs = 0
        decoded = lean_publish.decode_publish_response
        install = lean_publish.install

        def watched(data: bytes, lean_for: Any) -> Any:
            response, lean = decoded(data, lean_for)
            if lean and response.Parameters.NotificationMessage.NotificationData:
                self.lean += 1
            return response, lean

        def counted_install(*args: Any) -> None:
            self.installs += 1
            install(*args)

        monkeypatch.setattr(lean_publish, "decode_publish_response", watched)
        monkeypatch.setattr(lean_publish, "install", counted_install)


def _when(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# (variant, status, source time, source picoseconds) a server may write.
NOW = _when(2026, 12, 5, 6, 0, 0)
CASES: list[tuple[ua.Variant, int, datetime | None, int | None]] = [
    (ua.Variant(5.25, ua.VariantType.Double), 0, NOW, 500),  # Good with picoseconds
    (ua.Variant(7, ua.VariantType.Int32), 0, NOW, None),
    (ua.Variant(True, ua.VariantType.Boolean), 0, NOW, None),
    (ua.Variant(2**63 + 5, ua.VariantType.UInt64), 0, NOW, None),
    (ua.Variant("text", ua.VariantType.String), 0, NOW, None),
    (ua.Variant(1.5, ua.VariantType.Double), ua.StatusCodes.BadSensorFailure, NOW, None),
    (ua.Variant(1.5, ua.VariantType.Double), ua.StatusCodes.UncertainLastUsableValue, NOW, None),
    (ua.Variant(3.0, ua.VariantType.Float), 0, _when(1601, 1, 1), None),  # "no time"
    (ua.Variant(4.0, ua.VariantType.Double), 0, _when(9999, 12, 31, 23, 59, 59), None),
    (ua.Variant(float("nan"), ua.VariantType.Double), 0, NOW, None),
    (ua.Variant(6.0, ua.VariantType.Double), 0, None, None),  # no source time
    (ua.Variant(8, ua.VariantType.Int16), 0x00000400, NOW, None),  # Good, info bits set
]


def _first(variant: ua.Variant) -> ua.Variant:
    """A value of the case's type that differs from it (an unchanged value is no data
    change, so each test starts its nodes here)."""
    first = {str: "", bool: False}.get(type(variant.Value), 0)
    return ua.Variant(first, variant.VariantType)


async def _reset(sim: OpcUaSimulator) -> None:
    server: Any = sim._server
    for index, (variant, *_rest) in enumerate(CASES):
        node_id = ua.NodeId(f"lean.{index}", sim.namespace_index)
        await server.write_attribute_value(node_id, ua.DataValue(_first(variant)))


def _same(a: Any, b: Any) -> bool:
    return a == b or (a != a and b != b)  # NaN-safe


async def _run_cases(sim: OpcUaSimulator, source: OpcUaSource) -> None:
    """Write every case to its own node on the server and check the agent's reading is
    what the general path makes of asyncua's own DataValue for it."""
    sink = Collector()
    server: Any = sim._server  # the in-process asyncua server
    await _reset(sim)
    async with running(source, sink):
        await sink.wait_all(list(_sensors(sim)), lambda r: True)
        mark = sink.mark()
        server_time = _when(2026, 12, 5, 6, 0, 1)
        expected = {}
        values: DataValues = source._values  # the general path, the source's own
        for index, (variant, status, source_time, picos) in enumerate(CASES):
            dv = ua.DataValue(
                Value=variant,
                StatusCode=ua.StatusCode(status),
                SourceTimestamp=source_time,  # type: ignore[arg-type]
                SourcePicoseconds=picos,
                ServerTimestamp=server_time,  # type: ignore[arg-type]
            )
            await server.write_attribute_value(ua.NodeId(f"lean.{index}", sim.namespace_index), dv)
            expected[f"b{index:02d}"] = values.reading_from(f"b{index:02d}", dv, 0)

        def arrived() -> bool:
            got = {r.sensor_id: r for r in sink.readings[mark:]}
            return all(
                sid in got
                and _same(got[sid].value, want.value)
                and got[sid].quality is want.quality
                for sid, want in expected.items()
            )

        try:
            await wait_until(arrived, timeout_s=10)
        finally:
            got = {r.sensor_id: r for r in sink.readings[mark:]}
            for sid, want in expected.items():
                print(sid, "want", want, "got", got.get(sid))
        for sid, want in expected.items():
            reading = got[sid]
            # Source time: the one asyncua's DataValue gives (0 stands for "now": ours).
            if want.source_time_ns != 0:
                assert reading.source_time_ns == want.source_time_ns, (sid, reading, want)
            assert (reading.quality, reading.reason) == (want.quality, want.reason), sid
    assert source.publish_decode_errors == 0


async def test_values_a_server_sends_read_as_asyncuas_decoder_gives_them(
    sim: OpcUaSimulator, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = _Watch(monkeypatch)
    await _run_cases(sim, _source(sim, pki))
    assert watch.lean > 0


@pytest.mark.parametrize("mode", ["Sign", "SignAndEncrypt"])
async def test_a_secured_channel_publishes_through_the_lean_decoder(
    sim: OpcUaSimulator, pki: Pki, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    watch = _Watch(monkeypatch)
    await _run_cases(sim, _source(sim, pki, policy="Basic256Sha256", mode=mode))
    assert watch.lean > 0


async def test_each_new_session_after_a_reconnect_publishes_lean(
    sim: OpcUaSimulator, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = _Watch(monkeypatch)
    source = _source(sim, pki)
    sink = Collector()
    async with running(source, sink):
        await sink.wait_all(list(_sensors(sim)), lambda r: True)
        sim.drop_connections()
        await wait_until(lambda: watch.installs >= 2, timeout_s=20)
        lean_before = watch.lean
        mark = sink.mark()
        await sim._server.write_attribute_value(  # type: ignore[attr-defined]
            ua.NodeId("lean.0", sim.namespace_index),
            ua.DataValue(ua.Variant(4242.0, ua.VariantType.Double)),
        )
        await wait_until(
            lambda: any(r.sensor_id == "b00" and r.value == 4242.0 for r in sink.readings[mark:])
        )
        await wait_until(lambda: watch.lean > lean_before)
    assert source.publish_decode_errors == 0
