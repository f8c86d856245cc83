"""Helpers for the configuration tests: a valid site file to start from, and a writer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

CONFIG_TESTS = Path(__file__).resolve().parent
REPO_ROOT = CONFIG_TESTS.parent.parent
BROKEN = CONFIG_TESTS / "broken"

VALID_SITE = """\
version: 1
site: {id: plant-07, name: "Plant 7"}
connections:
  plc1: {protocol: modbus-tcp, host: 127.0.0.1, port: 15020}
  ua1: {protocol: opcua, endpoint: "opc.tcp://127.0.0.1:4840"}
assets:
  P-101: {name: "Pump P-101", maintainx_id: 1001}
sensors:
  p101_temp: {connection: ua1, node: "ns=2;s=P101.Temp", unit: degC}
  p101_vibration:
    connection: plc1
    register: {table: holding, address: 0, type: int16}
  p101_running: {connection: plc1, register: {table: coil, address: 16}}
rules:
  - id: p101-hot
    asset: P-101
    sensor: p101_temp
    high: {limit: 85, deadband: 3}
    on_delay: 5s
forwarding:
  mode: maintainx
  maintainx: {api_key: "${MAINTAINX_API_KEY}"}
"""


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """``write("site.yaml", text)`` → the path of a new file under ``tmp_path``."""

    def _write(name: str, text: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    return _write


SAMPLE_ENV = (
    "MAINTAINX_API_KEY",
    "MAINTAINX_KEY_PLANT_NORTH",
    "MAINTAINX_WEBHOOK_SECRET",
    "MQTT_PASSWORD",
    "OPCUA_PASSWORD",
    "HUB_MQTT_PASSWORD",
    "HUB_PG_DSN",
)
"""The variables the sample files reference, set as on a configured machine: `validate`
warns about an unset ${VAR}, which these tests are not about (tests/config/test_env_refs.py
is)."""


@pytest.fixture(autouse=True)
def _sample_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SAMPLE_ENV:
        monkeypatch.setenv(name, f"sample-{name.lower()}-value")
