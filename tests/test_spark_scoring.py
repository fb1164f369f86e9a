"""Scoring and training sets by Spark on a small copy of the simulated world: the registry's
champion in Arrow batches gives the DuckDB path's scores, a re-run adds none, alerts go out
and reports are written from what Spark wrote, and the training frame is the DuckDB path's."""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from jobs.config import Config, load_config
from tests.test_spark_ingest import SPARK_CONFIG, needs_spark, spark_fixture  # noqa: F401

DAYS = 4  # the world's last days only: small data, the same on both engines


@dataclass(frozen=True)
class Both:
    cfg: Config
    duck_scores: dict[tuple[str, int], float]
    duck_profile: Any  # the DuckDB scoring's day profiles of the days, merged (a Profile)
    days: tuple[date, ...]


@pytest.fixture(scope="module")
def both(
    spark: Any, world_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Both]:
    """The world's deployment (its registry and champion) with only its last landing days,
    ingested by both engines into fresh warehouses; the DuckDB path has scored them."""
    from jobs.ingest import ingest
    from jobs.profiles import window_profile
    from jobs.registry_access import open_registry
    from jobs.scoring import score_pending
    from jobs.spark.ingest import spark_ingest
    from jobs.warehouse import warehouse

    root = tmp_path_factory.mktemp("both") / "world"
    shutil.copytree(world_template, root)
    for feed in ("transactions", "labels"):
        for f in sorted((root / "landing" / feed).glob("*.parquet"))[:-DAYS]:
            f.unlink()
    (root / "var" / "warehouse.duckdb").unlink()
    (root / "config.toml").write_text((root / "config.toml").read_text() + SPARK_CONFIG)
    cfg = load_config(root / "config.toml")
    with warehouse(cfg.warehouse_path, extra_columns=cfg.extra_columns()) as con:
        ingest(con, cfg)
        score_pending(con, cfg, open_registry(cfg), "duck-run")
        rows = con.execute("SELECT transaction_id, model_version, score FROM scores").fetchall()
        days = tuple(
            d
            for (d,) in con.execute(
                "SELECT DISTINCT event_time::DATE FROM transactions ORDER BY 1"
            ).fetchall()
        )
        profile, _ = window_profile(
            con, days[0], days[-1] + timedelta(days=1), model_name="fraud", model_version=1
        )
        con.execute("DELETE FROM scores; DELETE FROM alerts; DELETE FROM scoring_state")
        con.execute("DELETE FROM feature_profiles")
    assert spark_ingest(spark, cfg).rows_loaded == len(rows)
    yield Both(cfg, {(t, v): s for t, v, s in rows}, profile, days)


@needs_spark
def test_spark_scores_equal_duckdb_scores_alerts_go_out_and_a_rerun_adds_none(
    spark: Any, both: Both
) -> None:
    """Through ``fraudwatch score`` with ``[engine] kind = "spark"``."""
    import json

    from click.testing import CliRunner

    from jobs.alerting import deliver
    from jobs.cli import cli
    from jobs.spark.tables import duckdb_views
    from jobs.warehouse import configured_warehouse

    cfg, duck = both.cfg, both.duck_scores
    assert len(duck) > 1000
    ran = CliRunner().invoke(cli, ["score", "--config", str(cfg.path), "--json"])
    assert ran.exit_code == 0, ran.output
    summary = json.loads(ran.stdout)
    first = summary["counts"]["score"]
    assert summary["job"] == "score" and summary["counts"]["engine"] == "spark"
    assert first["champion_version"] == 1 and first["scored"] == len(duck)
    assert first["profiled_days"] == len(both.days)
    views = duckdb.connect()
    duckdb_views(views, cfg)
    got = views.execute(
        "SELECT transaction_id, model_name, model_version, role, score, run_id FROM scores"
    ).fetchall()
    assert len(got) == len(duck)
    for tid, name, version, role, score, run_id in got:
        assert (name, role, run_id) == (cfg.settings.model.name, "champion", summary["run_id"])
        assert math.isclose(score, duck[(tid, version)], rel_tol=1e-9, abs_tol=1e-12), tid

    # alerts: created from Spark's scores in the warehouse outbox, delivered by the file channel
    budget, threshold = cfg.settings.alerts.daily_budget, cfg.settings.alerts.threshold
    assert first["alerts_created"] > 0
    with configured_warehouse(cfg) as con:
        alerts = con.execute("SELECT transaction_id, score, alert_day FROM alerts").fetchall()
    assert len({a[0] for a in alerts}) == first["alerts_created"]
    assert all(score >= threshold for _, score, _ in alerts)
    assert max(sum(1 for a in alerts if a[2] == d) for _, _, d in alerts) <= budget
    sent = deliver(cfg, lambda: configured_warehouse(cfg))
    assert sent.to_dict()  # delivered through the usual channels
    outbox = list(cfg.outbox_dir.rglob("*"))
    assert any(alerts[0][0] in p.read_text() for p in outbox if p.is_file())

    again = CliRunner().invoke(cli, ["score", "--config", str(cfg.path)])
    assert again.exit_code == 0, again.output
    assert "score: 0 transactions by champion v1; 0 new alert(s)" in again.stdout
    duckdb_views(views, cfg)
    assert views.execute("SELECT count(*) FROM scores").fetchall()[0][0] == len(duck)


@needs_spark
def test_reports_are_written_from_what_spark_wrote(spark: Any, both: Both) -> None:
    """The reports read the Parquet tables through temporary views on a warehouse connection."""
    from jobs.registry_access import open_registry
    from jobs.reporting import write_reports_with
    from jobs.spark.scoring import spark_score
    from jobs.spark.tables import duckdb_views
    from jobs.warehouse import configured_warehouse

    cfg = both.cfg
    reg = open_registry(cfg)
    spark_score(spark, cfg, reg, "spark-reports")  # a no-op when the other test ran first
    with configured_warehouse(cfg) as con:
        duckdb_views(con, cfg)
        assert con.execute("SELECT count(*) FROM scores").fetchall()[0][0] == len(both.duck_scores)
        out = write_reports_with(con, cfg, reg, force=True)
    assert "error" not in out, out
    pages = [p for p in cfg.reports_dir.rglob("*.html")]
    assert pages, out


@needs_spark
def test_spark_training_set_is_the_duckdb_one_and_a_sample_says_so(spark: Any, both: Both) -> None:
    import polars as pl

    from jobs.spark.ingest import read_table
    from jobs.spark.training_sets import spark_training_set, weights
    from jobs.training import load_training_data, resolve_window
    from jobs.warehouse import warehouse
    from tests.test_spark_features import assert_same_features

    cfg = both.cfg
    with warehouse(cfg.warehouse_path, extra_columns=cfg.extra_columns()) as con:
        window = resolve_window(con, cfg, date(2026, 4, 2), date(2026, 4, 5))
        want = load_training_data(con, cfg, window)
    tx, labels = read_table(spark, cfg, "transactions"), read_table(spark, cfg, "labels")
    data, sampling = spark_training_set(spark, cfg, window, tx, labels)
    assert not sampling.sampled and sampling.rows_kept == want.frame.height
    assert data.frame["is_fraud"].sum() == want.frame["is_fraud"].sum() > 0
    assert_same_features(data.frame.to_arrow(), want.frame.to_arrow(), "training")
    assert data.label_coverage == want.label_coverage
    assert data.warm_up_share == want.warm_up_share

    # the driver may hold 1,000 rows
    text = cfg.path.read_text().replace("[spark]\n", "[spark]\nmax_training_rows = 1000\n")
    small_path = cfg.root / "small.toml"
    small_path.write_text(text)
    small = load_config(small_path)
    sampled, how = spark_training_set(spark, small, window, tx, labels)
    frauds = int(want.frame["is_fraud"].sum())
    assert how.sampled and how.rows_in_window == want.frame.height
    assert how.frauds_in_window == frauds == int(sampled.frame["is_fraud"].sum())
    assert 500 < sampled.frame.height < 1500
    total = float(weights(sampled, how).sum())
    assert abs(total - want.frame.height) < 0.2 * want.frame.height
    assert how.to_dict()["weights"] == "legit rows weigh 1/legit_rate, frauds 1"
    assert isinstance(sampled.frame, pl.DataFrame)


@needs_spark
def test_spark_scoring_stores_the_day_profiles_the_drift_report_reads(
    spark: Any, both: Both
) -> None:
    """The day profiles Spark scoring stored are the DuckDB scoring's (same rows, missing,
    ranges, sums, categories), and the drift report reads them: it profiles no day itself."""
    from jobs.profiles import SCORE, ensure_day_profiles, window_profile
    from jobs.registry_access import open_registry
    from jobs.reporting import write_reports_with
    from jobs.spark.scoring import spark_score
    from jobs.spark.tables import duckdb_views
    from jobs.warehouse import configured_warehouse
    from reports.profile import CategoricalSketch, NumericSketch

    cfg, days = both.cfg, both.days
    reg = open_registry(cfg)
    spark_score(spark, cfg, reg, "spark-profiles")  # a no-op when the first test ran
    end = days[-1] + timedelta(days=1)
    with configured_warehouse(cfg) as con:
        duckdb_views(con, cfg)
        assert ensure_day_profiles(con, cfg, list(days), model_name="fraud", model_version=1) == {}
        got, n_days = window_profile(con, days[0], end, model_name="fraud", model_version=1)
        want = both.duck_profile
        assert n_days == len(days) and got.rows == want.rows == len(both.duck_scores)
        assert set(got.columns) == set(want.columns) and SCORE in got.columns
        for name, mine in got.columns.items():
            theirs = want.columns[name]
            assert (mine.n, mine.missing) == (theirs.n, theirs.missing), name
            if isinstance(mine, NumericSketch):
                assert isinstance(theirs, NumericSketch)
                assert (mine.lo, mine.hi) == (theirs.lo, theirs.hi) or mine.finite == 0, name
                assert math.isclose(mine.total, theirs.total, rel_tol=1e-9, abs_tol=1e-9), name
            else:
                assert isinstance(mine, CategoricalSketch) and isinstance(theirs, CategoricalSketch)
                assert dict(mine.counts) == dict(theirs.counts), name
        out = write_reports_with(con, cfg, reg, force=True)  # the reports profile nothing
        assert "error" not in out, out
        parts = con.execute("SELECT DISTINCT part FROM feature_profiles").fetchall()
    assert parts and all(p.endswith("/spark") for (p,) in parts), parts  # no day backfilled


@needs_spark
def test_fraudwatch_train_on_spark_registers_a_sampled_version_with_its_lineage(
    spark: Any, both: Both
) -> None:
    """``fraudwatch train`` with kind = spark: Spark builds the set, the driver trains on a
    weighted sample (``max_training_rows``), the version is registered as the DuckDB path
    registers one, plus what was sampled, and becomes the challenger."""
    import json

    from click.testing import CliRunner

    from jobs.cli import cli
    from jobs.registry_access import open_registry
    from jobs.training import load_training_data, resolve_window
    from jobs.warehouse import configured_warehouse, warehouse

    cfg = both.cfg
    with warehouse(cfg.warehouse_path, extra_columns=cfg.extra_columns()) as con:
        window = resolve_window(con, cfg, date(2026, 4, 2), date(2026, 4, 5))
        full = load_training_data(con, cfg, window).frame
    text = cfg.path.read_text().replace("[spark]\n", "[spark]\nmax_training_rows = 1000\n")
    (cfg.root / "train.toml").write_text(text)
    args = ["train", "--config", str(cfg.root / "train.toml"), "--start", "2026-04-02"]
    ran = CliRunner().invoke(cli, [*args, "--end", "2026-04-05"])
    assert ran.exit_code == 0, ran.output
    rows, frauds = full.height, int(full["is_fraud"].sum())
    assert (
        f"registered fraud version 2 (challenger): window 2026-04-02..2026-04-05, {rows:,} rows"
        in ran.stdout
    )
    reg = open_registry(cfg)
    assert reg.get_alias("fraud", "challenger").version == 2  # type: ignore[union-attr]
    lin, first = reg.get_version("fraud", 2).lineage, reg.get_version("fraud", 1).lineage
    assert set(lin.extra) == set(first.extra) | {"sampling"}
    assert lin.rows == rows and math.isclose(lin.fraud_rate, frauds / rows)
    sampling = lin.extra["sampling"]
    assert sampling["rows_in_window"] == rows and sampling["frauds_in_window"] == frauds
    assert 0 < sampling["legit_rate"] < 1 and 500 < sampling["rows_kept"] < 1500
    assert "moved to the window's fraud rate" in sampling["calibration"]
    # weighted: the validation rows stand for the window's, and the volume checks count them
    assert lin.metrics["n_valid_weighted"] > 2 * lin.metrics["n_valid"]
    volume = {c["name"]: c for c in lin.data_quality["checks"]}
    assert volume["min_rows"]["value"] == pytest.approx(rows, rel=0.2)
    assert volume["fraud_rate"]["value"] == pytest.approx(frauds / rows, rel=0.2)
    assert lin.extra["calibration"] is not None
    with configured_warehouse(cfg) as con:
        runs = con.execute("SELECT status, counts FROM runs WHERE job = 'train'").fetchall()
    assert [r[0] for r in runs] == ["ok"]
    counts = runs[0][1] if isinstance(runs[0][1], dict) else json.loads(runs[0][1])
    assert counts["engine"] == "spark" and counts["train"]["rows_trained_on"] < rows


@needs_spark
def test_fraudwatch_run_on_spark_ingests_scores_alerts_and_reports_a_new_day(
    spark: Any, both: Both
) -> None:
    """``fraudwatch run`` with ``[engine] kind = "spark"``: the new day's file goes through
    every stage, recorded in the runs ledger, the challenger trained on Spark in shadow (this
    test runs last: it adds a day)."""
    import json

    from click.testing import CliRunner

    from jobs.cli import cli
    from jobs.registry_access import open_registry
    from jobs.simulate import SimulationOptions, simulate
    from jobs.spark.tables import duckdb_views
    from jobs.warehouse import configured_warehouse

    cfg = both.cfg
    simulate(
        cfg.root / "landing",
        start=date(2026, 4, 6),
        days=1,
        seed=11,
        options=SimulationOptions(n_cards=600, n_merchants=150),
    )
    result = CliRunner().invoke(cli, ["run", "--config", str(cfg.path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    counts = summary["counts"]
    assert summary["status"] == "ok" and counts["engine"] == "spark"
    assert counts["ingest"]["files_ingested"] == 2 and counts["ingest"]["rows_loaded"] > 500
    assert counts["score"]["scored"] == counts["ingest"]["rows_loaded"]
    assert "error" not in (counts.get("reports") or {})
    views = duckdb.connect()
    duckdb_views(views, cfg)
    day = views.execute(
        "SELECT count(*) FROM transactions t JOIN scores s USING (transaction_id) "
        "WHERE t.event_time >= TIMESTAMP '2026-04-06' AND s.role = 'champion'"
    ).fetchall()[0][0]
    assert day == counts["ingest"]["rows_loaded"]
    # the version `fraudwatch train` registered on Spark (the test above) scored it in shadow
    challenger = open_registry(cfg).get_alias("fraud", "challenger")
    assert counts["score"]["challenger_version"] == (challenger and challenger.version)
    assert counts["score"]["shadow_scored"] == (day if challenger else 0)
    with configured_warehouse(cfg) as con:
        runs = con.execute("SELECT job, status FROM runs WHERE run_id = ?", [summary["run_id"]])
        assert runs.fetchall() == [("run", "ok")]


@needs_spark
def test_the_gate_reads_what_spark_wrote(spark: Any, world_template: Path, tmp_path: Path) -> None:
    """``fraudwatch compare`` with kind = spark reads Spark's tables: the whole simulated
    world ingested by Spark into a deployment whose DuckDB warehouse then holds none of its
    rows gives the gate's verdict of the DuckDB engine on the same landing files, an
    out-of-time window with labelled days and both models compared."""
    import json

    from click.testing import CliRunner

    from jobs.cli import cli
    from jobs.registry_access import open_registry
    from jobs.spark.ingest import spark_ingest
    from jobs.warehouse import warehouse

    verdicts = {}
    for engine in ("duckdb", "spark"):
        root = tmp_path / engine
        shutil.copytree(world_template, root)  # DuckDB has ingested every landing file
        config = root / "config.toml"
        if engine == "spark":
            config.write_text(config.read_text() + SPARK_CONFIG)
        cfg = load_config(config)
        if engine == "spark":  # the rows are Spark's only
            assert spark_ingest(spark, cfg).rows_loaded > 0
            with warehouse(cfg.warehouse_path, extra_columns=cfg.extra_columns()) as con:
                con.execute("DELETE FROM transactions; DELETE FROM labels")
        reg = open_registry(cfg)
        first = reg.get_version("fraud", 1)
        twin = reg.register_version(
            "fraud", reg.load_booster("fraud", 1).model_to_string(), first.lineage
        )
        ran = CliRunner().invoke(
            cli, ["compare", str(twin.version), "--config", str(config), "--json"]
        )
        assert ran.exit_code in (0, 1), ran.output
        out = json.loads(ran.stdout)
        verdicts[engine] = {k: out[k] for k in ("passed", "reasons", "checks", "window")}
    assert verdicts["spark"] == verdicts["duckdb"]
    checks = {c["name"]: c for c in verdicts["duckdb"]["checks"]}
    # the gate judged rows: labelled days and frauds in its window, the two models compared
    assert checks["labelled_days"]["passed"] and checks["labelled_frauds"]["passed"], checks
    assert len(checks) > 3 and not any("no comparison" in c["detail"] for c in checks.values())
