"""read_json_object: the one reader of the hub's small JSON state files (subscriptions,
webhook secrets): anything but a JSON object reads as empty, as on a first start."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge_agent.common.atomic import read_json_object
from edge_agent.hub.subscriptions import load_subscriptions, save_subscriptions


@pytest.mark.parametrize("text", [None, "", "{not json", "[1, 2]", '"text"', "\udcff"])
def test_anything_but_an_object_reads_as_empty(tmp_path: Path, text: str | None) -> None:
    path = tmp_path / "state.json"
    if text is not None:
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
    assert read_json_object(path) == {}


def test_an_object_reads_as_itself(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"site-a": ["s1"]}', encoding="utf-8")
    assert read_json_object(path) == {"site-a": ["s1"]}


def test_subscriptions_are_saved_private_and_read_back(tmp_path: Path) -> None:
    save_subscriptions(tmp_path, {"site-a": [{"id": 7, "url": "https://hub/webhooks/a"}]})
    assert load_subscriptions(tmp_path) == {"site-a": [{"id": 7, "url": "https://hub/webhooks/a"}]}
    files = os.listdir(tmp_path)
    assert files == ["webhook-subscriptions.json"]  # no temporary left beside it
    assert (tmp_path / "webhook-subscriptions.json").stat().st_mode & 0o777 == 0o600


def test_a_state_file_that_is_not_utf8_does_not_stop_the_hub(tmp_path: Path) -> None:
    """Before, both loaders caught only OSError and JSONDecodeError: a file of other bytes
    raised UnicodeDecodeError out of the hub's start."""
    from edge_agent.hub.subscriptions import SUBSCRIPTIONS_FILE
    from edge_agent.hub.webhook_secrets import SECRETS_FILE, load_webhook_secrets

    (tmp_path / SUBSCRIPTIONS_FILE).write_bytes(b"\xff\xfe{")
    (tmp_path / SECRETS_FILE).write_bytes(b"\xff\xfe{")
    assert load_subscriptions(tmp_path) == {}
    assert load_webhook_secrets(tmp_path) == {}
