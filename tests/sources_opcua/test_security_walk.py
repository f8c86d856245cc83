"""docs/opcua-security.md followed as written, against a secured server: SignAndEncrypt
only, no anonymous access, a trust list that starts empty (issue 19)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.simulators.opcua import SERVER_APPLICATION_URI, SimulatorSecurity
from edge_agent.sources.opcua.certs import generate_self_signed, thumbprint
from edge_agent.sources.opcua.errors import Cause
from tests.conftest import REPO_ROOT, free_port

from .conftest import SimulatorThread

DOC = REPO_ROOT / "docs" / "opcua-security.md"
DOC_ENDPOINT = "opc.tcp://10.0.7.30:4840"
USER, PASSWORD = "edge", "pw-4-tests"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorThread]:
    root = tmp_path_factory.mktemp("walk-server")
    generate_self_signed(root / "server.pem", root / "server.key", SERVER_APPLICATION_URI)
    thread = SimulatorThread(
        port=free_port(),
        security=SimulatorSecurity(
            certificate=root / "server.pem",
            private_key=root / "server.key",
            policies=("Basic256Sha256_SignAndEncrypt",),
        ),
        users={USER: PASSWORD},
    )
    try:
        yield thread
    finally:
        thread.close()


def printed_sha256(output: str, after: str) -> str:
    """The first ``SHA-256:`` line after the line starting with ``after``."""
    tail = output[output.index(after) :]
    found = re.search(r"^SHA-256:\s+([0-9a-f]{64})$", tail, re.M)
    assert found, output
    return found.group(1)


def test_the_walk_as_written(
    served: SimulatorThread,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    [site_text] = blocks("yaml")
    assert DOC_ENDPOINT in site_text
    (tmp_path / "site.yaml").write_text(site_text.replace(DOC_ENDPOINT, served.simulator.endpoint))
    monkeypatch.chdir(tmp_path)
    simulator = served.simulator

    ours = server = ""
    commands = [line for block in blocks("sh") for line in block.splitlines() if line.strip()]
    assert len(commands) == 6
    for line in commands:
        command, _, comment = line.partition("#")
        expected = int(m.group(1)) if (m := re.search(r"exits (\d)", comment)) else 0
        words = shlex.split(command)
        if words[0] == "export":
            name, _, value = words[1].partition("=")
            monkeypatch.setenv(name, value)
            continue
        assert words[0] == "edge-agent", line
        words = [server if w == "SHA256-OF-THE-SERVER" else w for w in words]
        code = main(words[1:])
        out = capsys.readouterr().out
        assert code == expected, f"{line}\n{out}"
        if words[1:3] == ["certificate", "site.yaml"] and "--server" not in words:
            ours = printed_sha256(out, "certificate:")
        elif words[-1] == "--server":
            server = printed_sha256(out, "server certificate:")
        elif words[1] == "read" and expected == 1:
            # Step 4 on the server: the rejected certificate with the SHA-256 step 2 printed
            # is moved to the trusted ones.
            assert (
                f"the server does not trust our certificate pki/client.pem (SHA-256 {ours};" in out
            )
            [rejected] = simulator.rejected_clients
            assert thumbprint(rejected) == ours
            simulator.trust_client(rejected)
        elif words[1] == "read":
            assert re.search(r"^p101_bearing_temp\s+\S+\s+degC\s+good", out, re.M), out
    assert ours and server
    assert (tmp_path / "pki/server.der").exists()


def test_every_refusal_cause_is_explained() -> None:
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index("## What each refusal says") :]
    for cause in Cause:
        assert f"| `{cause.value}` |" in table, cause
