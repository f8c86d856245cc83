"""Cut the operations edge-agent uses out of MaintainX's OpenAPI spec, for the schema tests.

    python tests/maintainx/extract_spec.py PATH/TO/openapi.json \
        > tests/maintainx/data/openapi-extract.json

Descriptions and examples are dropped (they are prose, not schema); everything else of the
kept operations is copied unchanged, so the tests check against MaintainX's own schemas.
"""

from __future__ import annotations

import json
import sys
from typing import Any

KEEP: dict[str, list[str]] = {
    "/workorders": ["post", "get"],
    "/workorders/{id}": ["get", "patch"],
    "/workorders/{id}/status": ["patch"],
    "/workorders/{id}/comments": ["post", "get"],
    "/assets": ["post", "get"],
    "/assets/{id}": ["get"],
    "/meters": ["post", "get"],
    "/meters/{id}": ["get"],
    "/meterreadings": ["post"],
    "/subscriptions": ["post"],
    "/subscriptions/{id}": ["get", "delete"],
    "/subscriptions/{id}/secret": ["get"],
    "/metertriggers": ["post", "get"],
    "/metertriggers/{id}": ["get", "delete"],
}
PROSE = {"description", "example", "examples", "summary", "x-codeSamples", "tags"}


def strip(node: Any, in_properties: bool = False) -> Any:
    """Drop prose keys, but never a property that happens to be called "description"."""
    if isinstance(node, dict):
        return {
            key: strip(value, in_properties=(key == "properties" and not in_properties))
            for key, value in node.items()
            if in_properties or key not in PROSE
        }
    if isinstance(node, list):
        return [strip(item) for item in node]
    return node


def main(path: str) -> None:
    with open(path, encoding="utf-8") as handle:
        spec = json.load(handle)
    out = {
        "openapi": spec["openapi"],
        "info": {
            "title": spec["info"].get("title"),
            "version": spec["info"].get("version"),
            "x-extract": "Operations edge-agent uses, cut from MaintainX's published OpenAPI "
            "spec by tests/maintainx/extract_spec.py; prose removed, schemas unchanged.",
        },
        "servers": spec["servers"],
        "components": spec["components"],
        "paths": {p: {m: strip(spec["paths"][p][m]) for m in ms} for p, ms in KEEP.items()},
        "x-webhooks": {
            "WORK_ORDER_STATUS_CHANGE": strip(spec["x-webhooks"]["WORK_ORDER_STATUS_CHANGE"])
        },
    }
    json.dump(out, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
