"""Scoring by Spark: the registry's champion (challenger in shadow) in Arrow batches gives the
DuckDB path's scores on the same transactions, and a re-run adds none."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import duckdb

from jobs.config import Config, load_config
from tests.conftest import World
from tests.test_spark_ingest import SPARK_CONFIG, needs_spark, spark_fixture  # noqa: F401

DAYS = 4  # the world's last days only: small data, the same on both engines


def _last_days(world: World) -> Config:
    """The world's deployment (its registry and champion) with only its last landing days and
    a fresh warehouse, set up for both engines."""
    for feed in ("transactions", "labels"):
        files = sorted((world.root / "landing" / feed).glob("*.parquet"))
        for f in files[:-DAYS]:
            f.unlink()
    world.cfg.warehouse_path.unlink()
    text = (world.root / "config.toml").read_text()
    (world.root / "config.toml").write_text(text + SPARK_CONFIG)
    return load_config(world.root / "config.toml")


@needs_spark
def test_spark_scores_equal_duckdb_scores_and_a_rerun_adds_none(
    spark: Any, world: World, tmp_path: Path
) -> None:
    from jobs.ingest import ingest
    from jobs.registry_access import open_registry
    from jobs.scoring import score_pending
    from jobs.spark.ingest import spark_ingest
    from jobs.spark.scoring import spark_score
    from jobs.spark.tables import duckdb_views
    from jobs.warehouse import warehouse

    cfg = _last_days(world)
    reg = open_registry(cfg)
    with warehouse(cfg.warehouse_path, extra_columns=cfg.extra_columns()) as con:
        ingest(con, cfg)
        score_pending(con, cfg, reg, "duck-run")
        duck = {
            (t, v): s
            for t, v, s in con.execute(
                "SELECT transaction_id, model_version, score FROM scores"
            ).fetchall()
        }
    assert len(duck) > 1000

    assert spark_ingest(spark, cfg).rows_loaded == len(duck)
    first = spark_score(spark, cfg, reg, "spark-run")
    assert first.champion_version == world.champion and first.scored == len(duck)
    views = duckdb.connect()
    duckdb_views(views, cfg)
    got = views.execute(
        "SELECT transaction_id, model_name, model_version, role, score, run_id FROM scores"
    ).fetchall()
    assert len(got) == len(duck)
    for tid, name, version, role, score, run_id in got:
        assert (name, role, run_id) == (cfg.settings.model.name, "champion", "spark-run")
        assert math.isclose(score, duck[(tid, version)], rel_tol=1e-9, abs_tol=1e-12), tid

    again = spark_score(spark, cfg, reg, "spark-rerun")
    assert again.scored == 0
    duckdb_views(views, cfg)
    assert views.execute("SELECT count(*) FROM scores").fetchall()[0][0] == len(duck)
