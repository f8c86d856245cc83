"""`edge-agent validate` and `print-config` as an engineer runs them: exit codes, output
lines, and never a Python traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from ruamel.yaml import YAML

from edge_agent.cli import main
from edge_agent.sources.opcua.certs import generate_self_signed

from .conftest import BROKEN, REPO_ROOT, VALID_SITE

Write = Callable[..., Path]


def edge_agent(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


def test_valid_file_exits_0(write: Write) -> None:
    done = edge_agent("validate", write("site.yaml", VALID_SITE))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""
    assert "no problems" in done.stderr


def test_errors_exit_1_with_one_line_each(write: Write) -> None:
    text = VALID_SITE.replace("on_delay: 5s", "on_delay: 5").replace("deadband: 3", "dedband: 3")
    done = edge_agent("validate", "site.yaml", cwd=write("site.yaml", text).parent)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "site.yaml:18:23: error: rules[0].high.dedband: unknown key `dedband`; "
        "did you mean `deadband`?",
        "site.yaml:19:15: error: rules[0].on_delay: a duration needs a unit: write 5s, 5ms or "
        "5m, not a bare number",
    ]
    assert done.stderr.strip() == "2 errors in site.yaml"


def test_warnings_alone_exit_0(write: Write) -> None:
    done = edge_agent(
        "validate", write("site.yaml", VALID_SITE.replace("deadband: 3", "deadband: 90"))
    )
    assert done.returncode == 0
    assert ": warning: rules[0].high.deadband: " in done.stdout
    assert done.stderr.strip().startswith("1 warning in")


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("missing.yaml", None, "no such file"),
        ("folder", "dir", "is a directory"),
        ("empty.yaml", "", "is empty"),
        ("image.yaml", b"\x89PNG\r\n\x1a\n\x00\x00IHDR", "is a binary file"),
        ("latin1.yaml", b"site: {name: M\xfcnchen}\n", "is not UTF-8 text"),
        ("prose.yaml", "This is not a config: really.\n", "is not a site file"),
        ("broken.yaml", "a: [1, 2\n", "not valid YAML"),
    ],
)
def test_not_a_site_file_is_one_line_and_exit_1(
    tmp_path: Path, name: str, content: str | bytes | None, fragment: str
) -> None:
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    done = edge_agent("validate", path)
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{path}:") and fragment in lines[0]


def test_json_format_for_tools(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", "--format", "json", str(BROKEN / "limit-typo.yaml")])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["errors"] == 1 and report["warnings"] == 0
    assert report["diagnostics"][0]["path"] == "rules[0].high.limt"
    assert report["diagnostics"][0]["path_elements"] == ["rules", 0, "high", "limt"]


def test_many_files_and_the_worst_decides(capsys: pytest.CaptureFixture[str], write: Write) -> None:
    good = write("good.yaml", VALID_SITE)
    code = main(["validate", str(good), str(BROKEN / "duplicate-rule-id.yaml")])
    assert code == 1
    assert capsys.readouterr().out.count("\n") == 1


def test_hub_file_is_recognised(capsys: pytest.CaptureFixture[str], write: Write) -> None:
    path = write("hub.yaml", "hub: {}\n")
    code = main(["validate", str(path)])
    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith(f"{path}:") and "Traceback" not in out
    assert "version" not in out, "a hub file is not checked as a site file"


def test_print_config_hides_secrets_and_fills_defaults(write: Write) -> None:
    done = edge_agent("print-config", write("site.yaml", VALID_SITE))
    assert done.returncode == 0, done.stderr
    printed = YAML(typ="safe", pure=True).load(done.stdout)
    assert printed["forwarding"]["maintainx"]["api_key"] == "***"
    assert "MAINTAINX_API_KEY" not in done.stdout
    assert printed["defaults"]["poll"] == "1s"
    assert printed["connections"]["plc1"]["timeout"] == "1s"
    assert printed["rules"][0]["on_delay"] == "5s"
    assert printed["connections"]["ua1"]["poll"] == "1s", "the poll in effect, from defaults"
    assert printed["sensors"]["p101_running"]["register"]["type"] == "bool"


def test_print_config_of_an_invalid_file_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["print-config", str(BROKEN / "literal-secret.yaml")])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert ": error: forwarding.mqtt.password: a secret must not be written" in captured.err
    assert "hunter2" not in captured.err


def test_demo_site_validates_from_the_command_line() -> None:
    done = edge_agent("validate", "configs/demo/site.yaml", cwd=REPO_ROOT)
    assert done.returncode == 0, done.stdout


# The site file of the issue that specified it, as written there.
ISSUE_EXAMPLE = """\
version: 1
site: {id: plant-07, name: "Plant 7 (Austin)"}   # id: [a-z0-9][a-z0-9-]{0,62}
defaults: {poll: 1s, stale_after: 2m}
connections:
  plc1: {protocol: modbus-tcp, host: 10.0.7.21, port: 502, unit_id: 1, poll: 1s, timeout: 1s}
  rs485: {protocol: modbus-rtu, device: rfc2217://gw:4001, baudrate: 19200, parity: N, stopbits: 1}
  ua1:
    protocol: opcua
    endpoint: "opc.tcp://10.0.7.30:4840"
    mode: subscribe                  # poll | subscribe
    security: {policy: Basic256Sha256, mode: SignAndEncrypt, certificate: pki/cert.der,
               private_key: pki/key.pem, server_certificate: pki/server.der}
    username: edge
    password: ${OPCUA_PASSWORD}
assets:
  P-101: {maintainx_id: 48213, name: "Cooling-water pump P-101"}
sensors:
  p101_bearing_temp: {connection: ua1, node: "ns=2;s=Line1.P101.BearingTemp", unit: degC}
  p101_vibration:
    connection: plc1
    register: {table: holding, address: 20, type: int16}   # 0-based protocol address
    scale: {factor: 0.01, offset: 0}
    unit: mm/s
  p101_flow:
    connection: plc1
    register: {table: input, address: 100, type: float32, word_order: little, byte_order: big}
  p101_running: {connection: plc1, register: {table: coil, address: 16}}
rules:
  - id: p101-bearing-hot
    asset: P-101
    sensor: p101_bearing_temp
    high: {limit: 85, deadband: 3}
    on_delay: 60s
    off_delay: 2m
    priority: MEDIUM
    escalate: [{above: 95, priority: HIGH}]
    work_order:
      title: "{asset.name}: bearing {value:.1f} {unit}"
      categories: [CORRECTIVE]
forwarding:
  mode: mqtt                          # mqtt | maintainx
  mqtt: {host: hub.example.com, port: 8883, tls: {ca: pki/ca.pem}, username: plant-07,
         password: ${MQTT_PASSWORD}}
  maintainx: {base_url: "https://api.getmaintainx.com/v1", api_key: ${MAINTAINX_API_KEY}}
storage: {path: /var/lib/edge-agent, max_bytes: 256MB}
health: {listen: "127.0.0.1:9108"}
"""


def test_the_issue_example_as_written_gets_one_clear_error(write: Write) -> None:
    # `${X}` unquoted inside `{ }` is a YAML syntax error (the `{` opens a mapping).
    done = edge_agent("validate", "site.yaml", cwd=write("site.yaml", ISSUE_EXAMPLE).parent)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "site.yaml:43:21: error: (file): not valid YAML: expected ',' or '}', but got '{' "
        "(while parsing a flow mapping): inside { } or [ ], quote a secret reference: "
        '"${NAME}"'
    ]


def test_the_issue_example_with_quoted_secrets_is_valid_and_prints_no_secret(
    write: Write,
) -> None:
    text = ISSUE_EXAMPLE.replace("password: ${MQTT_PASSWORD}}", 'password: "${MQTT_PASSWORD}"}')
    text = text.replace("api_key: ${MAINTAINX_API_KEY}}", 'api_key: "${MAINTAINX_API_KEY}"}')
    path = write("site.yaml", text)
    # validate opens the files the connections name.
    write("pki/ca.pem", (BROKEN / "pki" / "ca.pem").read_bytes())
    for name in ("server", "cert"):  # the key left in key.pem is the client's
        generate_self_signed(path.parent / f"pki/{name}.pem", path.parent / "pki/key.pem", "urn:x")
        pem = (path.parent / f"pki/{name}.pem").read_bytes()
        der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
        write(f"pki/{name}.der", der)
    done = edge_agent("validate", path)
    assert (done.returncode, done.stdout) == (0, ""), done.stdout
    printed_text = edge_agent("print-config", path).stdout
    printed = YAML(typ="safe", pure=True).load(printed_text)
    assert "${" not in printed_text and "PASSWORD" not in printed_text
    assert printed["connections"]["ua1"]["password"] == "***"
    assert printed["forwarding"]["mqtt"]["password"] == "***"
    assert printed["forwarding"]["maintainx"]["api_key"] == "***"
    # Defaults filled in, with the values in effect.
    assert printed["connections"]["rs485"]["poll"] == "1s"
    assert printed["connections"]["rs485"]["timeout"] == "500ms"
    assert printed["sensors"]["p101_vibration"]["register"]["word_order"] == "big"
    assert printed["rules"][0]["on_delay"] == "1m"


def test_a_reader_that_goes_away_ends_the_output_quietly(
    write: Write, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`edge-agent ... | head`: the reader has closed the pipe; the command stops with
    128 + SIGPIPE and no traceback, as the shell's own tools do."""
    site = write("site.yaml", VALID_SITE)
    monkeypatch.setenv("MAINTAINX_API_KEY", "k")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone: every write is a broken pipe
    with open(write_end, "w", encoding="utf-8") as pipe:
        monkeypatch.setattr(sys, "stdout", pipe)
        assert main(["print-config", str(site)]) == 141
        monkeypatch.undo()
    assert "Traceback" not in capsys.readouterr().err
