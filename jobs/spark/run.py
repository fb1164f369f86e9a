"""One run on the Spark engine: what ``fraudwatch run`` does with ``[engine] kind = "spark"``.

Ingest and scoring (features, champion and challenger, the scores' commit) run on Spark
into the Parquet tables; the alerts of the new scores go into the DuckDB warehouse's
outbox and out through the usual channels; the reports read the Parquet tables through
DuckDB views. The run is recorded in the warehouse's ``runs`` ledger like any other, with
the same counts and problems (:func:`jobs.batch.run_stages` hands over to
:func:`spark_stages`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jobs import logs
from jobs.config import Config
from jobs.landing import IngestResult
from jobs.runs import RunRecord

log = logs.get("batch")


def spark_stages(cfg: Config, rec: RunRecord, *, reports: bool = True) -> None:
    """Ingest and score on Spark, deliver the alerts, write the reports when due."""
    from jobs.alerting import deliver
    from jobs.registry_access import open_registry
    from jobs.spark.ingest import spark_ingest
    from jobs.spark.scoring import spark_score
    from jobs.spark.session import spark_session
    from jobs.warehouse_windows import Windows

    reg = open_registry(cfg)
    seconds: dict[str, float] = {}
    rec.counts["engine"] = "spark"
    rec.counts["seconds"] = seconds
    t = time.perf_counter()
    spark = spark_session(cfg)
    seconds["session"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    ingested = spark_ingest(spark, cfg)
    rec.counts["ingest"] = ingested.to_dict()
    rec.problems += ingested.problems
    seconds["ingest"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    scored = spark_score(spark, cfg, reg, rec.run_id)
    rec.counts["score"] = scored.to_dict()
    seconds["score"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    with Windows(cfg) as access:  # a window is an ATTACH: no connection, catalog, migrations
        delivered = deliver(cfg, lambda: access.writing("deliver alerts"))
    rec.counts["alerts"] = delivered.to_dict()
    rec.problems += delivered.problems
    seconds["alerts"] = round(time.perf_counter() - t, 3)
    if reports and cfg.settings.reports.cadence != "never":
        t = time.perf_counter()
        rec.counts["reports"] = _reports(cfg, reg)
        seconds["reports"] = round(time.perf_counter() - t, 3)


def _reports(cfg: Config, reg: Any) -> Any:
    """The reports over the Parquet tables (temporary views on a warehouse connection); a
    failing report never undoes the committed run."""
    from jobs.reporting import reports_due, write_reports_with
    from jobs.warehouse import engine_warehouse

    try:
        with engine_warehouse(cfg) as con:  # kind = "spark": the Parquet tables as views
            if not reports_due(con, cfg.settings.reports.cadence):
                return None
            return write_reports_with(con, cfg, reg)
    except Exception as exc:
        logs.event(log, "reports failed", error=str(exc))
        return {"error": f"{type(exc).__name__}: {exc}"}


def spark_ingest_job(cfg: Config, *, reingest_paths: Sequence[Path] = ()) -> IngestResult:
    """``fraudwatch ingest`` on Spark: the new and changed landing files, in one commit,
    under a ``runs`` ledger row (counts, and the problems that make it needs_attention).

    ``--reingest`` (replacing an ingested file's rows) is the DuckDB engine's only."""
    from jobs.errors import ConfigError
    from jobs.runs import recorded_run
    from jobs.spark.ingest import spark_ingest
    from jobs.spark.session import spark_session

    if reingest_paths:
        raise ConfigError(
            f'{cfg.path}: --reingest is not available with [engine] kind = "spark" (it '
            "deletes and rewrites stored rows); a plain ingest loads a changed file's new "
            "rows and quarantines its changed ones"
        )
    with recorded_run(cfg, "ingest") as rec:
        rec.counts["engine"] = "spark"
        result = spark_ingest(spark_session(cfg), cfg)
        rec.counts["ingest"] = result.to_dict()
        rec.problems += result.problems
    return result


def spark_score_job(cfg: Config) -> dict[str, Any]:
    """``fraudwatch score`` on Spark: the champion's backlog (challenger in shadow), its
    alerts and day profiles, under a ``runs`` ledger row; returns the run's summary."""
    from jobs.registry_access import open_registry
    from jobs.runs import recorded_run
    from jobs.spark.scoring import spark_score
    from jobs.spark.session import spark_session

    with recorded_run(cfg, "score") as rec:
        rec.counts["engine"] = "spark"
        result = spark_score(spark_session(cfg), cfg, open_registry(cfg), rec.run_id)
        rec.counts["score"] = result.to_dict()
    return rec.to_dict()
