"""build_sources: one source per connection with sensors; asyncua only when needed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edge_agent.config.models import SiteConfig
from edge_agent.sources import build_sources
from edge_agent.sources.modbus.source import ModbusSource

SITE = {
    "version": 1,
    "site": {"id": "t"},
    "connections": {
        "plc": {"protocol": "modbus-tcp", "host": "127.0.0.1", "port": 1502},
        "bus": {"protocol": "modbus-rtu", "device": "/dev/ttyUSB0"},
        "idle": {"protocol": "modbus-tcp", "host": "127.0.0.1"},
    },
    "sensors": {
        "a": {"connection": "plc", "register": {"table": "holding", "address": 0}},
        "b": {"connection": "bus", "register": {"table": "coil", "address": 3}, "unit_id": 7},
    },
}


def test_one_source_per_connection_that_has_sensors(tmp_path: Path) -> None:
    sources = build_sources(SiteConfig.model_validate(SITE), tmp_path)
    assert [s.name for s in sources] == ["plc", "bus"]
    assert all(isinstance(s, ModbusSource) for s in sources)
    bus = sources[1]
    assert isinstance(bus, ModbusSource)
    assert [(b.unit_id, b.address) for b in bus.plan.blocks] == [(7, 3)]


def test_a_modbus_only_site_does_not_import_asyncua() -> None:
    code = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from edge_agent.config.models import SiteConfig\n"
        "from edge_agent.sources import build_sources\n"
        f"build_sources(SiteConfig.model_validate({SITE!r}), Path('.'))\n"
        "print('asyncua' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
