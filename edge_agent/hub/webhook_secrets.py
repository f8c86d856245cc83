"""The webhook secrets MaintainX gave the hub when it registered its subscriptions
(``hub HUB.yaml --register-webhooks``), kept per site in ``state_dir/webhook-secrets.json``
(mode 0600, replaced atomically) and read at start to check the webhooks' signatures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

from edge_agent.common.atomic import read_json_object, write_atomic

SECRETS_FILE: Final = "webhook-secrets.json"


def load_webhook_secrets(state_dir: Path) -> dict[str, list[str]]:
    """Secrets ``--register-webhooks`` received, per site (empty if none yet)."""
    data = read_json_object(state_dir / SECRETS_FILE)
    return {
        str(site): [str(s) for s in secrets if isinstance(s, str)]
        for site, secrets in data.items()
        if isinstance(secrets, list)
    }


def save_webhook_secret(state_dir: Path, site: str, secret: str) -> None:
    """Add a subscription secret for ``site`` (file mode 0600, replaced atomically)."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = load_webhook_secrets(state_dir)
    data.setdefault(site, [])
    if secret not in data[site]:
        data[site].append(secret)
    write_atomic(state_dir / SECRETS_FILE, json.dumps(data).encode())
