"""Upgrading the hub: its PostgreSQL tables of 0.1.0 (no version) are migrated, a later
release's are refused; the alert schemas it reads (the current one and the one before)."""

from __future__ import annotations

import json

import psycopg
import pytest

from edge_agent.common.schema_version import NewerFormatError
from edge_agent.hub.messages import Rejection, validate_alert
from edge_agent.hub.store_postgres import PostgresHubStore
from edge_agent.wire.alert import ACCEPTED_ALERT_SCHEMAS, ALERT_SCHEMA
from tests.hub.conftest import PG_DSN, make_alert


def _open(prefix: str) -> PostgresHubStore:
    return PostgresHubStore(PG_DSN, pool_size=1, table_prefix=prefix)


def test_postgres_tables_of_0_1_0_are_migrated_and_a_later_release_is_refused(
    pg_schema: str,
) -> None:
    prefix = f"{pg_schema}.hub_"
    _open(prefix).close()
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"DROP TABLE {prefix}schema_version")  # as 0.1.0 left its tables
        conn.execute(
            f"INSERT INTO {prefix}alerts (alert_id, site, asset, rule, raised_ns, work_order_id)"
            " VALUES ('alert-1', 'plant-a', 'p101', 'hot', 1, 4242)"
        )

    _open(prefix).close()
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        assert conn.execute(f"SELECT version FROM {prefix}schema_version").fetchall() == [(1,)]
        rows = conn.execute(f"SELECT alert_id, work_order_id FROM {prefix}alerts").fetchall()
        assert rows == [("alert-1", 4242)]  # kept
        conn.execute(f"UPDATE {prefix}schema_version SET version = 2")  # a later release's

    with pytest.raises(NewerFormatError) as refused:
        _open(prefix)
    message = str(refused.value)
    assert f"PostgreSQL table {prefix}schema_version" in message
    assert "schema version 2" in message and "up to 1" in message
    assert PG_DSN not in message
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        assert conn.execute(f"SELECT count(*) FROM {prefix}alerts").fetchone() == (1,)


def _validate(message: dict[str, object]) -> object:
    return validate_alert(
        "site-a", json.dumps(message).encode(), known_sites={"site-a"}, max_bytes=65536
    )


def test_the_hub_reads_the_current_and_previous_alert_schema_and_names_a_later_one() -> None:
    assert ALERT_SCHEMA in ACCEPTED_ALERT_SCHEMAS
    for schema in sorted(ACCEPTED_ALERT_SCHEMAS):
        assert not isinstance(_validate(make_alert("site-a", 1, schema=schema)), Rejection)
    later = _validate(make_alert("site-a", 2, schema="edge-agent/alert@99"))
    assert isinstance(later, Rejection) and later.reason == "wrong_schema"
    assert "upgrade the hub before its sites" in later.detail
    other = _validate(make_alert("site-a", 3, schema="something/else@1"))
    assert isinstance(other, Rejection) and "expected edge-agent/alert@1" in other.detail
