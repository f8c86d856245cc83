"""Property tests: a valid configuration survives YAML and back; no text breaks the loader."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from edge_agent.config.diagnostics import ConfigError
from edge_agent.config.loader import load_model, load_site
from edge_agent.config.models import SiteConfig, dump_site, site_json

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=24)
# Up to 8,000 h: every duration is at most a year (units.MAX_DURATION_NS).
DURATIONS = st.builds(
    lambda n, unit: f"{n}{unit}", st.integers(0, 8_000), st.sampled_from(["ms", "s", "m", "h"])
)
NUMBERS = st.one_of(
    st.integers(-1_000_000, 1_000_000),
    st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False),
)
SECRETS = st.one_of(
    st.from_regex(r"\$\{[A-Z_][A-Z0-9_]{0,15}\}", fullmatch=True),
    st.from_regex(r"file:[a-z/]{1,20}", fullmatch=True),
)

REGISTER_TYPES = [
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float32",
    "float64",
    "string",
    "bool",
]

_counter = itertools.count()


@st.composite
def connections(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["modbus-tcp", "modbus-rtu", "opcua"]))
    if kind == "modbus-tcp":
        connection: dict[str, Any] = {
            "protocol": kind,
            "host": draw(st.from_regex(r"[a-z0-9.]{1,20}", fullmatch=True)),
            "port": draw(st.integers(1, 65535)),
            "unit_id": draw(st.integers(0, 255)),
        }
    elif kind == "modbus-rtu":
        connection = {
            "protocol": kind,
            "device": "/dev/ttyUSB0",
            "parity": draw(st.sampled_from(["N", "E", "O"])),
            "stopbits": draw(st.sampled_from([1, 2])),
        }
        if draw(st.booleans()):
            connection["baudrate"] = draw(st.sampled_from([9600, 19200, 115200]))
            connection["request_delay"] = draw(DURATIONS)
    else:
        connection = {
            "protocol": kind,
            "endpoint": "opc.tcp://127.0.0.1:4840",
            "mode": draw(st.sampled_from(["poll", "subscribe"])),
        }
        if draw(st.booleans()):
            connection["username"] = draw(NAMES)
            connection["password"] = draw(SECRETS)
        if draw(st.booleans()):
            connection["security"] = {
                "policy": "Basic256Sha256",
                "mode": draw(st.sampled_from(["Sign", "SignAndEncrypt"])),
                "certificate": "pki/cert.der",
                "private_key": "pki/key.pem",
                "server_certificate": "pki/server.der",
            }
        if draw(st.booleans()):
            connection["deadband"] = draw(st.floats(0, 100, allow_nan=False))
    if draw(st.booleans()):
        connection["poll"] = draw(DURATIONS)
    if kind != "opcua" and draw(st.booleans()):
        connection["max_gap"] = draw(st.integers(0, 124))
        connection["backoff"] = {"initial": "250ms", "max": draw(DURATIONS)}
    return connection


@st.composite
def sensors(draw: st.DrawFn, connection_name: str, protocol: str) -> dict[str, Any]:
    sensor: dict[str, Any] = {"connection": connection_name}
    if protocol == "opcua":
        sensor["node"] = f"ns={draw(st.integers(0, 9))};s={draw(NAMES)}"
    else:
        table = draw(st.sampled_from(["coil", "discrete", "holding", "input"]))
        register: dict[str, Any] = {"table": table, "address": draw(st.integers(0, 65000))}
        if table in ("holding", "input"):
            kind = draw(st.sampled_from(REGISTER_TYPES))
            register["type"] = kind
            if kind == "string":
                register["length"] = draw(st.integers(1, 250))
            elif kind == "bool":
                register["bit"] = draw(st.integers(0, 15))
            else:
                register["word_order"] = draw(st.sampled_from(["big", "little"]))
                register["byte_order"] = draw(st.sampled_from(["big", "little"]))
        sensor["register"] = register
        if draw(st.booleans()):
            sensor["unit_id"] = draw(st.integers(1, 247))
    if draw(st.booleans()):
        sensor["stale_after"] = draw(DURATIONS)
    if draw(st.booleans()):
        sensor["description"] = draw(TEXT)
    if draw(st.booleans()):
        sensor["unit"] = draw(TEXT)
    if draw(st.booleans()):
        sensor["scale"] = {"factor": draw(NUMBERS), "offset": draw(NUMBERS)}
    return sensor


@st.composite
def site_documents(draw: st.DrawFn) -> dict[str, Any]:
    connection_map = draw(st.dictionaries(NAMES, connections(), min_size=1, max_size=3))
    sensor_map: dict[str, Any] = {}
    for name in draw(st.lists(NAMES, unique=True, min_size=1, max_size=5)):
        connection_name = draw(st.sampled_from(sorted(connection_map)))
        protocol = connection_map[connection_name]["protocol"]
        sensor_map[name] = draw(sensors(connection_name, protocol))
    assets = draw(
        st.dictionaries(
            NAMES,
            st.fixed_dictionaries({"name": TEXT}, optional={"maintainx_id": st.integers(1, 10**9)}),
            min_size=1,
            max_size=3,
        )
    )
    rules = []
    for index in range(draw(st.integers(0, 3))):
        rule: dict[str, Any] = {
            "id": f"rule-{index}",
            "asset": draw(st.sampled_from(sorted(assets))),
            "sensor": draw(st.sampled_from(sorted(sensor_map))),
            "priority": draw(st.sampled_from(["NONE", "LOW", "MEDIUM", "HIGH"])),
            "on_delay": draw(DURATIONS),
        }
        condition = draw(st.sampled_from(["high", "low", "band", "equals", "rate", "flatline"]))
        if condition in ("high", "low"):
            rule[condition] = {"limit": draw(NUMBERS), "deadband": draw(st.integers(0, 5))}
            if condition == "high" and draw(st.booleans()):
                rule["escalate"] = [{"above": draw(NUMBERS), "priority": "HIGH"}]
        elif condition == "band":
            rule["high"] = {"limit": 100.5, "deadband": draw(st.floats(0, 10))}
            rule["low"] = {"limit": -3}
        elif condition == "equals":
            rule["equals"] = draw(st.one_of(st.booleans(), NUMBERS, NAMES))
        elif condition == "rate":
            rule["rate"] = {"above": draw(st.integers(1, 100)), "per": "1m"}
        else:
            rule["flatline"] = {"for": draw(DURATIONS), "tolerance": draw(st.floats(0, 5))}
        if draw(st.booleans()):
            rule["off_delay"] = draw(DURATIONS)
            rule["cooldown"] = draw(DURATIONS)
            rule["inclusive"] = draw(st.booleans())
            rule["on_stale"] = draw(st.sampled_from(["hold", "clear", "alarm"]))
        if draw(st.booleans()):
            rule["only_when"] = {
                "sensor": draw(st.sampled_from(sorted(sensor_map))),
                "equals": draw(st.one_of(st.booleans(), NUMBERS, NAMES)),
            }
        if draw(st.booleans()):
            rule["chattering"] = {"activations": draw(st.integers(2, 9)), "window": "30s"}
        if draw(st.booleans()):
            rule["work_order"] = {
                "title": "{asset.name}: {value:.1f}",
                "description": draw(TEXT),
                "categories": ["X"],
                "assignees": [{"type": "TEAM", "id": draw(st.integers(1, 10**6))}],
                "due_in": draw(DURATIONS),
            }
        rules.append(rule)
    document: dict[str, Any] = {
        "version": 1,
        "site": {"id": draw(st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True))},
        "connections": connection_map,
        "assets": assets,
        "sensors": sensor_map,
        "rules": rules,
    }
    forwarding = draw(st.sampled_from([None, "maintainx", "mqtt"]))
    if forwarding == "maintainx":
        document["forwarding"] = {"mode": "maintainx", "maintainx": {"api_key": draw(SECRETS)}}
    elif forwarding == "mqtt":
        document["forwarding"] = {
            "mode": "mqtt",
            "mqtt": {
                "host": "hub.example.com",
                "port": draw(st.integers(1, 65535)),
                "tls": {"ca": "pki/ca.pem"},
                "username": draw(NAMES),
                "password": draw(SECRETS),
                "keepalive": draw(DURATIONS),
            },
        }
    if draw(st.booleans()):
        document["storage"] = {
            "path": "/var/lib/edge-agent",
            "max_bytes": draw(st.sampled_from(["256MB", "1GiB", "512KB", "4096B"])),
        }
        document["health"] = {"listen": f"127.0.0.1:{draw(st.integers(1, 65535))}"}
        document["logging"] = {"level": draw(st.sampled_from(["debug", "info", "error"]))}
    if draw(st.booleans()):
        document["defaults"] = {"poll": draw(DURATIONS), "stale_after": draw(DURATIONS)}
    return document


def to_yaml(data: Any) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("properties")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=site_documents())
def test_a_valid_model_written_to_yaml_loads_back_equal(
    document: dict[str, Any], scratch: Path
) -> None:
    config = SiteConfig.model_validate(document)
    path = scratch / f"site-{next(_counter)}.yaml"
    path.write_text(to_yaml(dump_site(config)), encoding="utf-8")
    loaded, diagnostics = load_model(path, SiteConfig)
    assert [d for d in diagnostics if d.is_error] == []
    assert loaded == config


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=site_documents())
def test_the_site_json_loads_back_equal_as_a_file_and_as_text(
    document: dict[str, Any], scratch: Path
) -> None:
    """What the last good copy and the child's site check write (issue 16): the same
    model read as a site file (JSON is YAML) and from the text, with the same options set."""
    config = SiteConfig.model_validate(document)
    text = site_json(config, indent=1)
    assert json.loads(text) == json.loads(json.dumps(dump_site(config)))
    path = scratch / f"site-{next(_counter)}.json"
    path.write_text(text, encoding="utf-8")
    loaded, diagnostics = load_model(path, SiteConfig)
    assert [d for d in diagnostics if d.is_error] == []
    assert loaded == config
    again = SiteConfig.model_validate_json(text)
    assert again == config
    assert again.model_fields_set == config.model_fields_set
    assert {k: s.model_fields_set for k, s in again.sensors.items()} == {
        k: s.model_fields_set for k, s in config.sensors.items()
    }


YAMLISH = st.lists(
    st.sampled_from(
        [
            "version: 1\n",
            "site: {id: a}\n",
            "connections:\n",
            "  plc: {protocol: modbus-rtu, device: /dev/x, unit_id: 0}\n",
            "  tcp: {protocol: modbus-tcp, host: 'h:502', poll: 0s}\n",
            "sensors:\n",
            "  s: {connection: plc, register: {table: coil, address: 1}}\n",
            "  t: {connection: tcp, register: {table: holding, address: 1, type: string}}\n",
            "assets:\n",
            "  a: {name: A}\n",
            "rules:\n",
            "  - id: x\n",
            "    sensor: s\n",
            "    asset: a\n",
            "    equals: ",
            "    only_when: {sensor: t, equals: ",
            "    work_order: {title: '{value:.1f} {limit:x}'}\n",
            "    escalate: [{above: 3, priority: HIGH}]\n",
            "    high: ",
            "{",
            "}",
            "[",
            "]",
            "&a ",
            "*a",
            "<<: ",
            "include: ",
            "x.yaml",
            "---\n",
            "!!python/object ",
            "? ",
            ": ",
            "- ",
            "  ",
            "\t",
            "on",
            "1:30",
            "${X}",
            "'",
            '"',
            "#",
            "\n",
            "~",
            "%YAML 1.1\n",
            "\ufeff",
            "é",
            "\\",
            ",",
            "|\n",
            ">-\n",
            "!!binary ",
            "0x1F",
            ".nan",
        ]
    ),
    max_size=40,
).map("".join)


# Site files built from plausible lines, section by section, with odd values and the odd
# broken line: most parse as YAML, so the models and every check see them.
SECTION_LINES: dict[str, list[str]] = {
    "connections:": [
        "  plc: {protocol: modbus-tcp, host: 127.0.0.1}",
        "  plc: {protocol: modbus-tcp, host: 'h:502', poll: 0s, backoff: {initial: 0s}}",
        "  bus: {protocol: modbus-rtu, device: /dev/ttyUSB0, unit_id: 0, parity: none}",
        "  ua: {protocol: opcua, endpoint: 'opc.tcp://127.0.0.1:4840'}",
    ],
    "sensors:": [
        "  s: {connection: plc, register: {table: coil, address: 1}}",
        "  s: {connection: plc, register: {table: coil, address: 1, type: int16}}",
        "  t: {connection: bus, unit_id: 250, register: {table: holding, address: 1}}",
        "  t: {connection: bus, register: {table: holding, address: 1, type: string}}",
        "  u: {connection: ua, node: 'ns=2,s=X'}",
        "  v: {connection: plc, register: {table: input, address: 65535, type: float32}}",
        "  w: {connection: nope, register: {table: holding, address: 1, type: REAL}}",
    ],
    "assets:": ["  a: {name: A}", "  b: {name: B, maintainx_id: 0}"],
    "rules:": [
        "    sensor: s",
        "    sensor: t",
        "    sensor: u",
        "    asset: a",
        "    equals: on",
        "    equals: 'off'",
        "    equals: 2",
        "    high: {limit: 5, deadband: 9}",
        "    low: {limit: 1, deadband: 9}",
        "    high: 5",
        "    escalate: [{above: 9, priority: HIGH}, {above: 7, priority: LOW}]",
        "    only_when: {sensor: t, equals: running}",
        "    work_order: {title: '{value:.1f} {limit:x} {peak:>5} {asset.location}'}",
        "    on_delay: 1:30",
        "    priority: CRITICAL",
    ],
}
ODD_LINES = [
    "forwarding: {mode: mqtt, mqtt: {host: 'mqtts://h:8883', password: secret}}",
    "forwarding: {mode: maintainx, maintainx: {api_key: $KEY}}",
    "defaults: {poll: 0s, stale_after: 1}",
    "include: [other.yaml]",
    "\tpoll: 1s",
    "  indented: wrongly",
    "storage:",
]


@st.composite
def site_lines(draw: st.DrawFn) -> str:
    lines = ["version: 1", "site: {id: plant-07}"]
    for header, children in SECTION_LINES.items():
        if not draw(st.booleans()):
            continue
        lines.append(header)
        if header == "rules:":
            for index in range(draw(st.integers(0, 3))):
                lines.append(f"  - id: r{index}")
                lines.extend(draw(st.lists(st.sampled_from(children), max_size=6)))
        else:
            lines.extend(draw(st.lists(st.sampled_from(children), max_size=4)))
    for _ in range(draw(st.integers(0, 2))):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(ODD_LINES)))
    return "\n".join(lines) + "\n"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=st.one_of(st.text(max_size=200), st.binary(max_size=200), YAMLISH, site_lines()))
def test_the_loader_raises_only_its_own_error(content: str | bytes, scratch: Path) -> None:
    path = scratch / f"any-{next(_counter)}.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", errors="surrogatepass")
    try:
        load_site(path)
    except ConfigError as exc:
        assert exc.diagnostics, "a refusal always says why"
        assert all(d.line >= 1 and d.col >= 1 for d in exc.diagnostics)
        # A check that crashed is turned into a diagnostic too; it must never happen.
        assert not [d for d in exc.diagnostics if "internal error" in d.message]


JUNK = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(),
        TEXT,
        st.sampled_from(["on", "1:30", "${X}", "{value:9999999999}", "ns=2;s=x", "holding"]),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(NAMES, inner, max_size=3)),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=site_documents(), data=st.data())
def test_checks_survive_any_wrong_value(document: dict[str, Any], data: Any, scratch: Path) -> None:
    """Replace any one value with junk: a diagnostic, never a crash inside a check."""
    path = data.draw(st.sampled_from(_paths(document)))
    node: Any = document
    for element in path[:-1]:
        node = node[element]
    node[path[-1]] = data.draw(JUNK)
    file = scratch / f"junk-{next(_counter)}.yaml"
    file.write_text(to_yaml(document), encoding="utf-8")
    try:
        load_site(file)
    except ConfigError as exc:
        assert not [d for d in exc.diagnostics if "internal error" in d.message]
