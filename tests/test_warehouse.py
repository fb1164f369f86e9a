"""The warehouse's versioned schema: created on first use, migrated in place, never downgraded."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from jobs.errors import FraudwatchError
from jobs.warehouse import MIGRATIONS, SCHEMA_VERSION, open_warehouse


def test_a_new_warehouse_has_the_current_schema(tmp_path: Path) -> None:
    con = open_warehouse(tmp_path / "w.duckdb")
    versions = [
        r[0] for r in con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
    ]
    assert versions == list(range(1, SCHEMA_VERSION + 1))
    con.close()


def test_a_version_1_warehouse_is_migrated_and_keeps_its_scores(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:  # what fraudwatch's first release created
        con.execute(MIGRATIONS[0])
        con.execute(
            "CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)"
        )
        con.execute("INSERT INTO schema_version VALUES (1, now()::TIMESTAMP)")
        con.execute(
            "INSERT INTO scores VALUES ('t1', 'fraud', 1, 'champion', 0.9, now()::TIMESTAMP, 'r1')"
        )
    con = open_warehouse(path)
    assert con.execute("SELECT max(version) FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    assert con.execute("SELECT transaction_id, score, run_id FROM scores").fetchall() == [
        ("t1", 0.9, "r1")
    ]
    # v2 dropped the in-memory key index on scores (uniqueness holds by construction)
    keys = con.execute(
        "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'scores' "
        "AND constraint_type = 'PRIMARY KEY'"
    ).fetchall()
    assert keys == [(0,)]
    con.close()


def test_a_newer_warehouse_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    open_warehouse(path).close()
    with duckdb.connect(str(path)) as con:
        con.execute("INSERT INTO schema_version VALUES (?, now()::TIMESTAMP)", [SCHEMA_VERSION + 1])
    with pytest.raises(FraudwatchError, match="newer than this fraudwatch understands"):
        open_warehouse(path)
