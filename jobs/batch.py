"""The batch run (``fraudwatch run``): ingest -> score -> alert -> deliver -> reports.

One process holds the warehouse's writer lock for the whole run (a second run
fails fast with :class:`~jobs.errors.WarehouseLocked`), but opens the file
read-write only while it writes: ingest and scoring work through short windows
(:mod:`jobs.warehouse_windows`: the file attached read-only to read, read-write
for one transaction at a time), delivery holds it only to read and mark the
outbox, and reports read it through a read-only connection. Analysts'
read-only connections get in between any two writes; how long each stage held
the file read-write is in the run's counts (``windows``).

Every stage is idempotent, so a re-run after a crash or a failed delivery
finishes the work and never duplicates it. The run is recorded in the ``runs``
ledger with counts per stage and the inference and alert policy it used.

A failing delivery channel does not fail the run: its alerts stay pending and
the run's counts say so. A failing report does not fail the run either (the
scores and alerts are already committed); it is recorded in the counts. A run
whose stages completed but found what a person must see (a landing file set
aside or changed after ingestion, alerts given up on) ends ``needs_attention``.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, closing
from dataclasses import dataclass
from typing import Any

import duckdb

from jobs import logs
from jobs.alerting import deliver
from jobs.config import Config
from jobs.ingest import ingest
from jobs.lean_imports import arrow_without_pandas, import_lightgbm
from jobs.registry_access import open_registry
from jobs.runs import RunRecord, recorded_run
from jobs.warehouse import configured_warehouse, open_configured
from jobs.warehouse_windows import Windows

log = logs.get("batch")


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    status: str
    counts: dict[str, Any]
    policy: dict[str, Any]
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "counts": self.counts,
            "policy": self.policy,
            "error": self.error,
        }


def run_policy(cfg: Config) -> dict[str, Any]:
    import_lightgbm()  # before jobs.loaded_model: start-up is a small run's cost
    from jobs.loaded_model import inference_policy

    a = cfg.settings.alerts
    return {
        "inference": inference_policy(cfg.settings.scoring).to_dict(),
        "alerts": {
            "threshold": a.threshold,
            "daily_budget": a.daily_budget,
            "channels": list(a.channels),
        },
    }


def _for_reports(cfg: Config) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
    """The warehouse read-only, so analysts read alongside the reports. In a process that
    holds it for writing elsewhere (the scheduler's other job), DuckDB refuses a second,
    read-only configuration: then the reports share the writer's."""
    try:
        con = open_configured(cfg, read_only=True)
    except duckdb.ConnectionException:
        return configured_warehouse(cfg)
    return closing(con)


def run_stages(cfg: Config, rec: RunRecord, *, reports: bool = True) -> None:
    """The stages of one run, each opening the warehouse for as long as it needs it; counts
    and problems go into ``rec``."""
    import_lightgbm()  # before jobs.scoring: start-up is a small run's cost
    from jobs.scoring import score_pending

    if cfg.settings.engine.kind != "spark":  # (the Spark engine's workers may use pandas)
        arrow_without_pandas()  # before any thread starts: see jobs/lean_imports.py
    # the feature sweep's and the trees' compiled kernels load while ingest works
    threading.Thread(target=_warm_up_kernels, name="fw-warm-up", daemon=True).start()

    if cfg.settings.engine.kind == "spark":  # issue 19: the data-parallel stages on Spark
        from jobs.spark.run import spark_stages

        return spark_stages(cfg, rec, reports=reports)
    reg = open_registry(cfg)
    clock = logs.Laps(rec.counts.setdefault("seconds", {}))
    windows: dict[str, Any] = {}
    rec.counts["windows"] = windows
    with Windows(cfg) as access:
        ingested = ingest(access, cfg)
    windows["ingest"] = access.stats.to_dict()
    rec.counts["ingest"] = ingested.to_dict()
    rec.problems += ingested.problems
    clock.lap("ingest")
    with Windows(cfg) as access:
        scored = score_pending(access, cfg, reg, rec.run_id)
    windows["score"] = access.stats.to_dict()
    rec.counts["score"] = scored.to_dict()
    clock.lap("score")
    with Windows(cfg) as access:  # a window is an ATTACH: no connection, catalog, migrations
        delivered = deliver(cfg, lambda: access.writing("deliver alerts"))
    windows["alerts"] = access.stats.to_dict()
    rec.counts["alerts"] = delivered.to_dict()
    rec.problems += delivered.problems
    clock.lap("alerts")
    if reports and cfg.settings.reports.cadence != "never":
        from jobs.reporting import reports_due, write_reports_with

        with _for_reports(cfg) as con:
            if reports_due(con, cfg.settings.reports.cadence):
                clock.skip()  # opening the warehouse and checking what is due: nowhere
                rec.counts["reports"] = _reports(con, cfg, reg, write_reports_with)
                clock.lap("reports")


def _warm_up_kernels() -> None:
    try:
        from jobs import sweep, tree_predict

        sweep.warm_up()
        tree_predict.warm_up()
    except Exception as exc:  # scoring loads them itself
        logs.event(log, "compiled kernels not warmed up", "debug", error=str(exc))


def _reports(con: duckdb.DuckDBPyConnection, cfg: Config, reg: Any, write: Any) -> Any:
    try:
        return write(con, cfg, reg)
    except Exception as exc:  # reports never undo a committed run
        logs.event(log, "reports failed", error=str(exc))
        return {"error": f"{type(exc).__name__}: {exc}"}


def run_batch(cfg: Config, *, reports: bool = True) -> RunSummary:
    """One batch: ingest, score, alert, deliver, and reports on the configured cadence."""
    with recorded_run(cfg, "run", policy=run_policy(cfg)) as rec:
        run_stages(cfg, rec, reports=reports)
    return RunSummary(rec.run_id, rec.status, rec.counts, rec.policy, rec.error)
