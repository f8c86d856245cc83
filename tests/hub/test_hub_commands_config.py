"""The hub file at the command line: ``validate`` and ``hub`` refuse ``backend: postgres``
when psycopg is missing (naming the pip command), ``print-config`` prints a hub file with
its secrets hidden, and ``validate`` warns at each unset ``${VAR}``."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from edge_agent.cli import main
from tests.conftest import REPO_ROOT

HUB_PG = """\
hub:
  id: hub-1
broker:
  host: 127.0.0.1
sites:
  site-a:
    api_key: ${HUB_CMD_KEY_A}
dedup:
  backend: postgres
  dsn: ${HUB_CMD_DSN}
state_dir: state
"""
# Runs the command as installed without the extra: psycopg cannot be imported.
WITHOUT_PSYCOPG = (
    "import sys; sys.modules['psycopg'] = None; "
    "from edge_agent.cli import main; sys.exit(main(sys.argv[1:]))"
)
ENV = {
    **os.environ,
    "PYTHONPATH": str(REPO_ROOT),
    "HUB_CMD_KEY_A": "hub-cmd-secret-key-a",
    "HUB_CMD_DSN": "postgresql://user:hub-cmd-secret-pw@127.0.0.1:1/x",
}


def _run(*args: str, without_psycopg: bool = False) -> subprocess.CompletedProcess[str]:
    """The command in a child process (where psycopg can be made unimportable), or in this
    one (faster) with the same environment."""
    if without_psycopg:
        return subprocess.run(
            [sys.executable, "-c", WITHOUT_PSYCOPG, *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env=ENV,
        )
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        mock_env(ENV),
    ):
        code = main(list(args))
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def mock_env(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_postgres_without_psycopg_is_refused_with_the_install_command(tmp_path: Path) -> None:
    hub_file = tmp_path / "hub.yaml"
    hub_file.write_text(HUB_PG)
    install = "pip install 'edge-agent[postgres]'"

    checked = _run("validate", str(hub_file), without_psycopg=True)
    assert checked.returncode == 1
    assert f"{hub_file}:9:12: error: dedup.backend: " in checked.stdout
    assert install in checked.stdout

    started = _run("hub", str(hub_file), without_psycopg=True)
    assert started.returncode == 2
    assert install in started.stderr and "Traceback" not in started.stderr

    # With the driver importable the same file validates: the check is about the driver.
    assert _run("validate", str(hub_file)).returncode == 0


def test_print_config_prints_a_hub_file_with_secrets_hidden(tmp_path: Path) -> None:
    hub_file = tmp_path / "hub.yaml"
    hub_file.write_text(HUB_PG)
    done = _run("print-config", str(hub_file))
    assert done.returncode == 0, done.stderr
    assert "api_key: '***'" in done.stdout and "dsn: '***'" in done.stdout
    assert "retry_interval: 5s" in done.stdout  # defaults filled in
    assert "hub-cmd-secret" not in done.stdout + done.stderr

    hub_file.write_text(HUB_PG.replace("host: 127.0.0.1", "hots: 127.0.0.1"))
    bad = _run("print-config", str(hub_file))
    assert bad.returncode == 1 and bad.stdout == ""
    assert f"{hub_file}:4:" in bad.stderr


def test_validate_warns_at_an_unset_variable_of_a_hub_file(tmp_path: Path) -> None:
    hub_file = tmp_path / "hub.yaml"
    hub_file.write_text(HUB_PG.replace("${HUB_CMD_DSN}", "${HUB_CMD_UNSET_DSN}"))
    done = _run("validate", str(hub_file))
    assert done.returncode == 0  # a warning: the service may have it in its own environment
    assert done.stdout.splitlines() == [
        f"{hub_file}:10:8: warning: dedup.dsn: ${{HUB_CMD_UNSET_DSN}} is not set in this "
        "environment; the service needs it in its own (e.g. the unit's EnvironmentFile)"
    ]


def test_validate_refuses_an_empty_key_file(tmp_path: Path) -> None:
    """An empty key file (a paste that did not happen in the rotation steps) is an error at
    `validate`, as a missing one is; the hub would send an empty key."""
    (tmp_path / "key-a").write_text("\n")
    hub_file = tmp_path / "hub.yaml"
    hub_file.write_text(HUB_PG.replace("${HUB_CMD_KEY_A}", "file:key-a"))
    done = _run("validate", str(hub_file))
    assert done.returncode == 1
    assert f"{hub_file}:7:14: error: sites.site-a.api_key: secret file " in done.stdout
    assert "key-a is empty" in done.stdout
    (tmp_path / "key-a").write_text("a-key\n")
    assert _run("validate", str(hub_file)).returncode == 0


def test_validate_refuses_a_busy_retry_loop_and_a_lease_shorter_than_a_call(
    tmp_path: Path,
) -> None:
    """`retry_interval: 0s` made the parked-alert loop re-read the store without pause, and a
    `claim_lease` that ends during a MaintainX call lets a second replica create the same
    work order; both validated."""
    hub_file = tmp_path / "hub.yaml"
    for setting, error in (
        ("retry_interval: 0s", "hub.retry_interval: must be at least 100ms"),
        ("claim_lease: 0s", "hub.claim_lease: must be at least 1s"),
        ("claim_lease: 10s", "hub.claim_lease must be longer than maintainx.timeout"),
    ):
        hub_file.write_text(HUB_PG.replace("  id: hub-1\n", f"  id: hub-1\n  {setting}\n"))
        done = _run("validate", str(hub_file))
        assert done.returncode == 1, setting
        assert error in done.stdout, done.stdout
    hub_file.write_text(HUB_PG.replace("  id: hub-1\n", "  id: hub-1\n  claim_lease: 11s\n"))
    assert _run("validate", str(hub_file)).returncode == 0
