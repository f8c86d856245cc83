"""The hub operator's boundaries: a hub file rewritten with anything before a SIGHUP, a
"SQLite store" of arbitrary bytes given to migrate-store, and arbitrary requests to the
emulator's admin endpoints. Each is refused with a clear error; nothing crashes."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.hub.app import Hub
from edge_agent.hub.config import HubConfig
from edge_agent.hub.migrate import MigrationError, open_source
from edge_agent.hub.reload import HubReloader
from edge_agent.simulators.maintainx import Emulator

HUB = {
    "hub": {"id": "hub-1"},
    "broker": {"host": "127.0.0.1"},
    "sites": {"site-a": {"api_key": "${HUB_FAULT_KEY}"}},
    "state_dir": "state",
}
SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(st.binary(max_size=2000) | st.text(max_size=2000).map(str.encode))
async def test_reload_of_any_bytes_is_refused_and_keeps_the_config(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hub.yaml"
        config = HubConfig.model_validate(HUB)
        hub = Hub(config, Path(folder))  # not started: a rejected reload touches nothing
        path.write_bytes(content)
        reloader = HubReloader(hub, path)
        if await reloader.reload("test"):
            pytest.skip("the bytes happened to be a valid hub file")  # cannot happen in practice
        assert reloader.report.last_outcome == "rejected"
        assert reloader.report.errors and all(str(path) in e for e in reloader.report.errors)
        assert hub.config is config and set(hub.sites) == {"site-a"}


@SETTINGS
@given(st.binary(max_size=4096))
def test_migrate_source_of_any_bytes_is_a_clear_error(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "old.sqlite3"
        path.write_bytes(content)
        with pytest.raises(MigrationError):
            open_source(path).close()


@pytest.fixture(scope="module")
def mx() -> Any:
    with Emulator(keys={"k": [1]}, rate_limiting=False) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def http() -> Any:
    with httpx.Client(timeout=5) as client:
        yield client


paths = st.sampled_from(
    ["/_emulator/keys", "/_emulator/keys/k", "/_emulator/workorders/1/status", "/_emulator/x"]
) | st.text(alphabet="abc/_%019", max_size=40).map(lambda t: "/_emulator/" + t)


@SETTINGS
@given(
    method=st.sampled_from(["GET", "POST", "PATCH", "DELETE"]),
    path=paths,
    body=st.none()
    | st.binary(max_size=200)
    | st.builds(
        lambda v: httpx.Request("POST", "http://x", json=v).content,
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(
                    st.sampled_from(["key", "organizations", "status"]), inner, max_size=3
                )
            ),
            max_leaves=6,
        ),
    ),
)
def test_admin_endpoints_answer_anything_without_failing(
    mx: Emulator, http: httpx.Client, method: str, path: str, body: bytes | None
) -> None:
    url = mx.url.removesuffix("/v1") + path
    answer = http.request(method, url, content=body)
    assert answer.status_code in (200, 201, 204, 400, 404)
    mx.set_key("k", [1])  # whatever a request revoked, the next example starts the same
    check = http.get(mx.url + "/workorders", headers={"Authorization": "Bearer k"})
    assert check.status_code == 200
