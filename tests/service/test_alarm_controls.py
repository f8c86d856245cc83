"""The alarm controls of a running agent (`edge-agent run`, a real Modbus plant, the MaintainX
emulator): the control socket (mode 0600, one JSON object per line, bounded, a bad request
answered and never fatal, each command id applied once, audited) and `edge-agent alarms`
talking to it."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT
from tests.service.conftest import AgentProcess, direct_site, wait_until

SOCKET = "control.sock"


def ask(path: Path, *lines: bytes) -> list[dict[str, Any]]:
    """Send ``lines`` on one connection; the answers, one per line, until the agent closes
    or has answered each."""
    answers: list[dict[str, Any]] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(15)
        sock.connect(str(path))
        reader = sock.makefile("rb")
        for line in lines:
            try:
                sock.sendall(line)
            except BrokenPipeError:
                break
            answer = reader.readline()
            if not answer:
                break
            answers.append(json.loads(answer))
    return answers


def command(command_id: str, action: str = "shelve", **fields: Any) -> bytes:
    body = {
        "schema": "edge-agent/command@1",
        "id": command_id,
        "action": action,
        "by": "test",
        "reason": "testing",
        **fields,
    }
    if action == "shelve" and "for" not in body and "until_clear" not in body:
        body["for"] = "1h"
    return json.dumps(body).encode() + b"\n"


def cli(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", "alarms", str(site), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        check=False,
    )


def audit_lines(state: Path) -> list[dict[str, Any]]:
    path = state / "alarm-audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_control_socket_answers_every_request_and_applies_each_id_once(
    make_agent: Any, plant: Any, emulator: Any, health_port: int, tmp_path: Path
) -> None:
    agent: AgentProcess = make_agent(direct_site(plant, emulator, health_port, tmp_path))
    state = tmp_path / "state"
    path = state / SOCKET
    agent.start()
    try:
        agent.wait_serving()
        wait_until(path.exists, 20, "the control socket")
        mode = path.lstat().st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o600
        assert not [p.name for p in state.iterdir() if p.name.startswith(".control-")]

        # Malformed: each answered with what is wrong, on the same connection.
        answers = ask(
            path,
            b"not json\n",
            b"[1, 2]\n",
            b'{"schema": "edge-agent/command@9", "id": "x"}\n',
            command("bad id with spaces"),
            b'{"id": "no-action-1", "by": "t"}\n',
        )
        assert [a["ok"] for a in answers] == [False] * 5
        assert "not JSON" in answers[0]["message"]
        assert "JSON object" in answers[1]["message"]
        assert "schema" in answers[2]["message"]
        assert answers[3]["message"].startswith("id:")
        assert answers[4]["id"] == "no-action-1" and answers[4]["message"].startswith("action:")
        assert {a["schema"] for a in answers} == {"edge-agent/command-result@1"}

        # An oversize line: answered, then the connection ends (no resync mid-line).
        [oversize] = ask(path, b"x" * (17 * 1024) + b"\n", b"{}\n")
        assert oversize["ok"] is False and "at most" in oversize["message"]

        # An unknown rule: refused by the engine, recorded once.
        [unknown] = ask(path, command("cmd-unknown-1", rule="no-such-rule"))
        assert unknown["ok"] is False and unknown["id"] == "cmd-unknown-1"

        # A shelve, then the same id again on another connection: one application.
        first = ask(path, command("cmd-shelve-1", rule="m201-current-high"))[0]
        again = ask(path, command("cmd-shelve-1", rule="m201-current-high"))[0]
        assert first["ok"] is True, first
        assert again["ok"] is True and again.get("repeat") is True
        assert again["message"] == first["message"]
        assert "repeat" not in first
        # The same id with another command is not a resend: refused, nothing applied, and
        # never answered with the first command's result.
        [reused] = ask(path, command("cmd-shelve-1", action="oos", rule="p101-vibration-high"))
        assert reused["ok"] is False and "repeat" not in reused
        assert "used before for another command" in reused["message"]

        # The same id through two connections at once: applied once, the other a repeat.
        both = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(2)]
        for sock in both:
            sock.settimeout(15)
            sock.connect(str(path))
        for sock in both:
            sock.sendall(command("cmd-twice", action="ack", rule="m201-current-high"))
        twice = [json.loads(sock.makefile("rb").readline()) for sock in both]
        for sock in both:
            sock.close()
        assert sorted(bool(a.get("repeat")) for a in twice) == [False, True]
        assert twice[0]["message"] == twice[1]["message"]
        assert len([line for line in audit_lines(state) if line.get("id") == "cmd-twice"]) == 1

        audited = [line for line in audit_lines(state) if line.get("id") == "cmd-shelve-1"]
        assert [line["outcome"] for line in audited] == ["applied", "rejected"]
        assert audited[0]["by"] == "test" and audited[0]["reason"] == "testing"
        assert audited[0]["action"] == "shelve" and audited[0]["outcome"] == "applied"
        assert audited[0]["peer"].startswith(f"uid={os.getuid()} ")
        ledger = json.loads((state / "alarm-commands.json").read_text())
        assert [r["id"] for r in ledger["results"]].count("cmd-shelve-1") == 1

        # The CLI shows it shelved; the agent lives on and counted every request.
        listed = cli(agent.site, "list", "--json")
        assert listed.returncode == 0, listed.stderr
        rows = {row["rule"]: row for row in json.loads(listed.stdout)}
        assert rows["m201-current-high"]["shelved"]["by"] == "test"
        assert rows["p101-vibration-high"]["shelved"] is None
        assert rows["p101-vibration-high"]["out_of_service"] is None
        assert agent.alive()
        assert agent.get("/healthz")[0] == 200
        counts = {
            outcome: agent.metric("edge_agent_alarm_commands_total", via="socket", outcome=outcome)
            for outcome in ("applied", "refused", "rejected", "repeated")
        }
        # cmd-twice: an ack of a rule not in alarm is refused by the engine, once.
        assert counts == {"applied": 1, "refused": 2, "rejected": 7, "repeated": 2}
        assert agent.metric("edge_agent_rules_shelved") == 1
        assert agent.metric("edge_agent_control_socket_up") == 1
        assert agent.stop() == 0
        assert not path.exists()

        # After a restart: still shelved, and the same id is still answered, not applied.
        agent.start()
        agent.wait_serving()
        wait_until(path.exists, 20, "the control socket")
        after = ask(path, command("cmd-shelve-1", rule="m201-current-high"))[0]
        assert after["repeat"] is True and after["message"] == first["message"]
        rows = {row["rule"]: row for row in json.loads(cli(agent.site, "list", "--json").stdout)}
        assert rows["m201-current-high"]["shelved"]["by"] == "test"
        audited = [line for line in audit_lines(state) if line.get("id") == "cmd-shelve-1"]
        assert [line["outcome"] for line in audited] == ["applied", "rejected"]
        # What the id did is kept across the restart too.
        [reused] = ask(path, command("cmd-shelve-1", action="shelve", rule="p101-vibration-high"))
        assert reused["ok"] is False and "used before for another command" in reused["message"]
        assert agent.stop() == 0
    finally:
        agent.kill()


def test_alarms_cli_against_a_running_agent(
    make_agent: Any, plant: Any, emulator: Any, health_port: int, tmp_path: Path
) -> None:
    agent: AgentProcess = make_agent(direct_site(plant, emulator, health_port, tmp_path))
    site = agent.site
    # An asset with no rule (a spare pump): out of service, it must still show.
    document = json.loads(site.read_text())
    document["assets"]["P-102"] = {"maintainx_id": 1003, "name": "Spare pump P-102"}
    site.write_text(json.dumps(document))
    stopped = cli(site, "list")
    assert stopped.returncode == 3
    assert "not running" in stopped.stderr
    agent.start()
    try:
        agent.wait_serving()
        wait_until((tmp_path / "state" / SOCKET).exists, 20, "the control socket")
        table = cli(site, "list")
        assert table.returncode == 0, table.stderr
        assert "RULE" in table.stdout and "p101-vibration-high" in table.stdout

        usage = cli(site, "shelve")
        assert usage.returncode == 2 and "name a rule" in usage.stderr

        # Another site's file sharing this state folder: refused before anything is sent.
        document = json.loads(site.read_text())
        document["site"]["id"] = "another-site"
        other = tmp_path / "other-site.yaml"
        other.write_text(json.dumps(document))
        wrong = cli(other, "shelve", "p101-vibration-high", "--for", "1h", "--reason", "x")
        assert wrong.returncode == 2
        assert "runs site" in wrong.stderr and "not another-site" in wrong.stderr

        # A broken edit of the site file (the agent runs on): --state-dir still reaches it.
        broken = tmp_path / "broken-site.yaml"
        broken.write_text(site.read_text() + "\n  bogus: [\n")
        refused = cli(broken, "list")
        assert refused.returncode == 2 and "--state-dir" in refused.stderr
        reached = cli(broken, "list", "--state-dir", str(tmp_path / "state"))
        assert reached.returncode == 0, reached.stderr
        assert "p101-vibration-high" in reached.stdout and "does not load" in reached.stderr

        oos = cli(
            site, "oos", "p101-vibration-high", "--reason", "sensor replaced", "--by", "maria"
        )
        assert oos.returncode == 0, oos.stderr
        ready = agent.json("/readyz")[1]
        assert "p101-vibration-high" in ready["alarms"]["out_of_service"]
        assert any("OUT OF SERVICE" in line for line in ready["degraded"])
        table = cli(site, "list")
        assert "OUT OF SERVICE (by maria: sensor replaced)" in table.stdout
        # `list RULE` / `list --asset A`: only those rows (an option is never ignored).
        one = cli(site, "list", "--asset", "P-101")
        assert one.returncode == 0, one.stderr
        assert "p101-vibration-high" in one.stdout and "m201-current-high" not in one.stdout
        none = cli(site, "list", "no-such-rule")
        assert none.returncode == 1 and "no rule matches no-such-rule" in none.stderr
        assert agent.metric("edge_agent_rules_out_of_service") == 1

        back = cli(site, "return", "p101-vibration-high", "--id", "return-1")
        assert back.returncode == 0, back.stderr
        repeat = cli(site, "return", "p101-vibration-high", "--id", "return-1")
        assert repeat.returncode == 0 and "already applied" in repeat.stdout
        assert "p101-vibration-high" not in agent.json("/readyz")[1]["alarms"]["out_of_service"]

        # An asset the site file does not have: refused. One with no rule: applied, and
        # shown in `list`, `list --asset` and /readyz until it is returned to service.
        unknown = cli(site, "oos", "--asset", "X-999", "--reason", "typo")
        assert unknown.returncode == 1 and "no asset 'X-999'" in unknown.stderr
        spare = cli(site, "oos", "--asset", "P-102", "--reason", "spare, disconnected")
        assert spare.returncode == 0 and "(0 rules)" in spare.stdout, spare.stderr
        listed = cli(site, "list").stdout
        assert "asset P-102 OUT OF SERVICE (no expiry) (by " in listed, listed
        only = cli(site, "list", "--asset", "P-102")
        assert only.returncode == 0 and "asset P-102 OUT OF SERVICE" in only.stdout
        ready = agent.json("/readyz")[1]
        assert ready["alarms"]["assets_out_of_service"]["P-102"]["rules"] == 0
        assert any("asset P-102 is OUT OF SERVICE" in line for line in ready["degraded"])
        assert cli(site, "return", "--asset", "P-102").returncode == 0
        ready = agent.json("/readyz")[1]
        assert ready["alarms"]["assets_out_of_service"] == {}
        assert not any("P-102" in line for line in ready["degraded"])

        refused = cli(site, "shelve", "p101-vibration-high", "--for", "99h", "--reason", "x")
        assert refused.returncode == 1
        assert "max_shelve" in refused.stderr
        assert agent.alive()
        assert agent.stop() == 0
    finally:
        agent.kill()
