"""Ingest by Spark (local mode) gives what the DuckDB ingest gives, on the same landing files.

The Spark tests share one session-scoped SparkSession (``local[2]``, small data); they are
skipped, saying why, only where pyspark or Java is absent.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest

from jobs.config import Config, load_config
from jobs.spark.session import missing_requirement
from tests.conftest import BASE_CONFIG

WHY = missing_requirement()
needs_spark = pytest.mark.skipif(WHY is not None, reason=f"Spark cannot run here: {WHY}")

SPARK_CONFIG = """
[engine]
kind = "spark"

[spark]
master = "local[2]"
warehouse = "var/spark-warehouse"

[spark.conf]
"spark.sql.shuffle.partitions" = 2
"spark.default.parallelism" = 2
"spark.driver.memory" = "1g"
"spark.ui.enabled" = false
"spark.sql.adaptive.enabled" = true
"""


@pytest.fixture(name="spark", scope="session")
def spark_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One SparkSession for every Spark test (starting the JVM costs seconds)."""
    if WHY is not None:
        pytest.skip(f"Spark cannot run here: {WHY}")
    from jobs.spark.session import spark_session

    root = tmp_path_factory.mktemp("spark-session")
    (root / "config.toml").write_text(BASE_CONFIG + SPARK_CONFIG)
    session = spark_session(load_config(root / "config.toml"))
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _deployment(root: Path, extra: str = "") -> Config:
    """Landing files of every format (the base config reads Parquet only)."""
    root.mkdir(parents=True, exist_ok=True)
    base = BASE_CONFIG.replace("*.parquet", "*")
    assert base.count('/*"') == 2
    (root / "config.toml").write_text(base + SPARK_CONFIG + extra)
    return load_config(root / "config.toml")


def _land_awkward_files(landing: Path) -> None:
    """Parquet days from the simulator, and hand-written files with every kind of bad row."""
    from jobs.simulate import SimulationOptions, simulate

    simulate(
        landing,
        start=date(2026, 3, 2),
        days=2,
        seed=5,
        options=SimulationOptions(n_cards=60, n_merchants=20),
    )
    tx = landing / "transactions"
    head = "transaction_id,event_time,card_id,merchant_id,amount,distance_km,channel\n"
    (tx / "2026-03-04-a.csv").write_text(
        head
        + "x1,2026-03-04 10:00:00,c1,m1,12.5,3.0,pos\n"
        + "x2,2026-03-04 10:01:00,c1,m1,-4,3.0,pos\n"  # negative amount
        + "x3,not a time,c2,m1,1,3.0,pos\n"  # bad timestamp
        + "x1,2026-03-04 10:02:00,c1,m2,7,3.0,pos\n"  # duplicate in file
        + "x4,2026-03-04 10:03:00,,m2,7,3.0,pos\n"  # missing card
        + "x5,2026-03-04 10:04:00,c3,m2,abc,3.0,pos\n"  # bad amount
        + "x6,2026-03-04 10:05:00,c3,m2,5,far,web\n"  # bad extra value
        + "x7,2026-03-04 10:06:00,c3,m2,5,1,web,surplus\n"  # ragged row
        + "x8,2099-03-04 10:06:00,c3,m2,5,1,web\n"  # future
        + "x9,2026-03-04 10:07:00,c4,m3,nan,1,web\n"  # non finite
    )
    (tx / "2026-03-04-b.csv").write_text(
        head
        + "x1,2026-03-04 11:00:00,c9,m9,1,1,pos\n"  # in an earlier file of the same ingest
        + "x10,2026-03-04 11:00:00,c9,m9,1,1,pos\n"
        + "x10,2026-03-04 11:00:01,c9,m9,2,1,pos\n"
    )
    (tx / "2026-03-04-c.parquet").write_bytes(b"")  # empty: set aside
    (tx / "2026-03-04-d.parquet").write_bytes(b"not parquet at all")  # set aside
    (landing / "labels" / "2026-03-05-extra.csv").write_text(
        "transaction_id,is_fraud,reported_at\n"
        "x1,true,2026-03-06 00:00:00\n"
        "x1,true,2026-03-06 00:00:00\n"  # duplicate label
        "x10,maybe,2026-03-06 00:00:00\n"  # bad label
        "x10,false,yesterday\n"  # bad timestamp
        "x6,false,2026-03-06 00:00:00\n"
    )


def _duckdb_tables(cfg: Config) -> duckdb.DuckDBPyConnection:
    from jobs.ingest import ingest
    from jobs.warehouse import open_warehouse

    con = open_warehouse(cfg.warehouse_path, extra_columns=cfg.extra_columns())
    ingest(con, cfg)
    return con


QUERIES = {
    "transactions": "SELECT transaction_id, event_time, card_id, merchant_id, amount, "
    "source_file, source_row, distance_km, channel FROM transactions",
    "labels": "SELECT * EXCLUDE (ingested_at) FROM labels",
    "quarantine": "SELECT * EXCLUDE (quarantined_at) FROM quarantine",
    "ingested_files": "SELECT path, feed, size_bytes, sha256, rows_read, rows_loaded, "
    "rows_quarantined, status, note FROM ingested_files",
}


def _rows(con: duckdb.DuckDBPyConnection, table: str, root: Path) -> list[tuple[Any, ...]]:
    """The rows, in a stable order, with the deployment's folder (in notes) as ``ROOT``."""
    rows = con.execute(QUERIES[table]).fetchall()
    here = str(root)
    return sorted(
        (tuple(v.replace(here, "ROOT") if isinstance(v, str) else v for v in r) for r in rows),
        key=repr,
    )


@needs_spark
def test_spark_ingest_equals_duckdb_ingest_and_never_ingests_a_file_twice(
    spark: Any, tmp_path: Path
) -> None:
    from jobs.spark.ingest import spark_ingest
    from jobs.spark.tables import duckdb_views

    _land_awkward_files(tmp_path / "a" / "landing")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    duck = _duckdb_tables(_deployment(tmp_path / "a"))
    cfg = _deployment(tmp_path / "b")

    got = spark_ingest(spark, cfg)
    views = duckdb.connect()
    duckdb_views(views, cfg)
    for table in QUERIES:
        assert _rows(views, table, cfg.root) == _rows(duck, table, tmp_path / "a"), table
    reasons = dict(views.execute("SELECT reason, count(*) FROM quarantine GROUP BY 1").fetchall())
    assert reasons["duplicate_in_file"] == 2 and reasons["duplicate_in_warehouse"] == 1
    assert reasons["malformed_row"] == 1 and reasons["duplicate_label"] == 1
    assert got.rows_loaded == duck.execute("SELECT count(*) FROM transactions").fetchall()[0][0]
    assert len(got.set_aside) == 2 and any("is empty" in p for p in got.problems)
    # the files are partitioned Parquet that DuckDB (and anything else) reads directly
    days = sorted(p.name for p in (cfg.spark_warehouse / "transactions").iterdir())
    assert days == ["event_date=2026-03-02", "event_date=2026-03-03", "event_date=2026-03-04"]

    again = spark_ingest(spark, cfg)
    assert again.rows_loaded == 0 and again.files_ingested == 0
    assert again.files_skipped == got.files_ingested
    assert len(again.still_set_aside) == 2
    duckdb_views(views, cfg)
    for table in QUERIES:
        assert _rows(views, table, cfg.root) == _rows(duck, table, tmp_path / "a"), table


HEAD = "transaction_id,event_time,card_id,merchant_id,amount,distance_km,channel\n"
FIRST = {
    "transactions/day.csv": HEAD
    + "a1,2026-03-04 10:00:00,c1,m1,1,1,pos\n"
    + "a2,2026-03-04 10:01:00,c1,m1,2,1,pos\n"
    + "a4,not a time,c2,m1,3,1,pos\n"
    + "a3,2026-03-04 10:02:00,c2,m1,3,1,pos\n",
    "transactions/other.csv": HEAD + "o1,2026-03-04 09:00:00,c9,m9,9,1,web\n",
    "labels/l.csv": "transaction_id,is_fraud,reported_at\na1,true,2026-03-06 00:00:00\n",
}
SECOND = {  # new versions of two ingested files
    "transactions/day.csv": HEAD
    + "a1,2026-03-04 10:00:00,c1,m1,1,1,pos\n"  # unchanged
    + "a2,2026-03-04 10:01:00,c1,m1,5,1,pos\n"  # changed amount
    + "a4,not a time,c2,m1,3,1,pos\n"  # quarantined before: not again
    + "a5,2026-03-04 10:03:00,c3,m2,4,1,pos\n"  # new
    + "a5,2026-03-04 10:04:00,c3,m2,4,1,pos\n"  # duplicate in file
    + "o1,2026-03-04 09:00:00,c9,m9,9,1,web\n",  # another file's row; a3 is gone
    "labels/l.csv": "transaction_id,is_fraud,reported_at\n"
    "a1,true,2026-03-06 00:00:00\n"  # loaded before
    "a5,true,2026-03-07 00:00:00\n"  # new
    "a2,perhaps,2026-03-07 00:00:00\n",  # bad label
}


def _land(landing: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (landing / name).parent.mkdir(parents=True, exist_ok=True)
        (landing / name).write_text(text)


@needs_spark
def test_a_changed_file_loads_its_new_rows_as_the_duckdb_engine_does(
    spark: Any, tmp_path: Path
) -> None:
    """A new version of an ingested file: new rows loaded, changed ones quarantined once, the
    ledger says changed; the same rows, quarantine and ledger as the DuckDB engine's, through
    ``fraudwatch ingest`` (exit 1: a changed file needs a person)."""
    from click.testing import CliRunner

    from jobs.cli import cli
    from jobs.ingest import ingest
    from jobs.spark.tables import duckdb_views

    for side in ("a", "b"):
        _land(tmp_path / side / "landing", FIRST)
    duck = _duckdb_tables(_deployment(tmp_path / "a"))
    cfg = _deployment(tmp_path / "b")
    first = CliRunner().invoke(cli, ["ingest", "--config", str(cfg.path)])
    assert first.exit_code == 0, first.output
    assert "3 new file(s), 0 changed" in first.stdout

    for side in ("a", "b"):
        _land(tmp_path / side / "landing", SECOND)
    ingest(duck, _deployment(tmp_path / "a"))
    second = CliRunner().invoke(cli, ["ingest", "--config", str(cfg.path)])
    assert second.exit_code == 1, second.output
    assert "0 new file(s), 2 changed" in second.stdout
    assert "1 row(s) loaded, 1 unchanged, 1 changed (quarantined as changed_after_ingest), " in (
        second.stderr
    )
    views = duckdb.connect()
    duckdb_views(views, cfg)
    # the DuckDB engine's detail ends with a tip naming --reingest, which Spark does not have
    duck.execute(
        "UPDATE quarantine SET detail = regexp_replace(detail, '; `fraudwatch ingest "
        "--reingest .*$', '')"
    )
    for table in QUERIES:
        assert _rows(views, table, cfg.root) == _rows(duck, table, tmp_path / "a"), table
    changed = views.execute(
        "SELECT source_row, field, detail FROM quarantine WHERE reason = 'changed_after_ingest'"
    ).fetchall()
    assert changed == [(2, "amount", "ingested earlier as amount = 2.0")]  # a2
    ledger = views.execute(
        "SELECT path, status, rows_loaded, previous_sha256 IS NOT NULL FROM ingested_files "
        "ORDER BY path"
    ).fetchall()
    assert ledger == [
        ("landing/labels/l.csv", "changed", 2, True),
        ("landing/transactions/day.csv", "changed", 4, True),
        ("landing/transactions/other.csv", "ingested", 1, False),
    ]
    amounts = views.execute("SELECT transaction_id, amount FROM transactions ORDER BY 1")
    assert amounts.fetchall() == [("a1", 1.0), ("a2", 2.0), ("a3", 3.0), ("a5", 4.0), ("o1", 9.0)]

    third = CliRunner().invoke(cli, ["ingest", "--config", str(cfg.path), "--json"])
    assert third.exit_code == 0 and '"files_skipped": 3' in third.stdout
    refused = CliRunner().invoke(
        cli,
        [
            "ingest",
            "--config",
            str(cfg.path),
            "--reingest",
            str(cfg.root / "landing" / "transactions" / "day.csv"),
        ],
    )
    assert refused.exit_code == 2 and "--reingest is not available" in refused.output


def _stage_rows(commit: Any, day: str, ids: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = commit.staging("transactions") / f"event_date={day}"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"transaction_id": ids}), folder / "part-0.parquet")


def test_a_commit_is_whole_or_nothing_across_a_crash(tmp_path: Path) -> None:
    """A job that died before its commit point leaves nothing; one that died after it is
    finished by the next job (no Spark needed: the commit is files and renames)."""
    from jobs.spark.tables import Commit, has_rows, recover

    cfg = _deployment(tmp_path)
    dead = Commit.begin(cfg.spark_warehouse)
    _stage_rows(dead, "2026-03-02", ["a", "b"])
    assert recover(cfg.spark_warehouse) == [f"rolled back commit {dead.commit_id}"]
    assert not has_rows(cfg, "transactions") and not dead.folder.exists()

    sealed = Commit.begin(cfg.spark_warehouse)
    _stage_rows(sealed, "2026-03-03", ["c"])
    assert sealed.seal() == 1  # died right after its commit point
    assert not has_rows(cfg, "transactions")
    assert recover(cfg.spark_warehouse) == [f"finished commit {sealed.commit_id}"]
    views = duckdb.connect()
    files = str(cfg.spark_warehouse / "transactions" / "**" / "*.parquet")
    got = views.execute("SELECT transaction_id FROM read_parquet(?)", [files]).fetchall()
    assert got == [("c",)] and not sealed.folder.exists()
    assert recover(cfg.spark_warehouse) == []
