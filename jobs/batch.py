"""The batch run (``fraudwatch run``): ingest -> score -> alert -> deliver -> reports.

One process holds the warehouse for the whole run (a second run fails fast
with :class:`~jobs.errors.WarehouseLocked`). Every stage is idempotent, so a
re-run after a crash or a failed delivery finishes the work and never
duplicates it. The run is recorded in the ``runs`` ledger with counts per
stage and the inference and alert policy it used.

A failing delivery channel does not fail the run: its alerts stay pending and
the run's counts say so. A failing report does not fail the run either (the
scores and alerts are already committed); it is recorded in the counts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import duckdb

from jobs import logs
from jobs.alerting import send_pending
from jobs.config import Config
from jobs.ingest import ingest
from jobs.registry_access import open_registry
from jobs.runs import RunRecord, ledger
from jobs.scoring import inference_policy, score_pending
from jobs.warehouse import configured_warehouse

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
    a = cfg.settings.alerts
    return {
        "inference": inference_policy(cfg).to_dict(),
        "alerts": {
            "threshold": a.threshold,
            "daily_budget": a.daily_budget,
            "channels": list(a.channels),
        },
    }


def run_stages(
    con: duckdb.DuckDBPyConnection, cfg: Config, rec: RunRecord, *, reports: bool = True
) -> None:
    """The stages of one run against an open warehouse; counts go into ``rec``."""
    reg = open_registry(cfg)
    seconds: dict[str, float] = {}
    rec.counts["seconds"] = seconds
    t = time.perf_counter()
    ingested = ingest(cfg, con)
    rec.counts["ingest"] = ingested.to_dict()
    seconds["ingest"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    scored = score_pending(con, cfg, reg, rec.run_id)
    rec.counts["score"] = scored.to_dict()
    seconds["score"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    delivered = send_pending(con, cfg)
    rec.counts["alerts"] = delivered.to_dict()
    seconds["alerts"] = round(time.perf_counter() - t, 3)
    if reports and cfg.settings.reports.cadence != "never":
        from jobs.reporting import reports_due, write_reports_with

        if reports_due(con, cfg):
            t = time.perf_counter()
            try:
                rec.counts["reports"] = write_reports_with(con, cfg, reg)
            except Exception as exc:  # reports never undo a committed run
                logs.event(log, "reports failed", error=str(exc))
                rec.counts["reports"] = {"error": f"{type(exc).__name__}: {exc}"}
            seconds["reports"] = round(time.perf_counter() - t, 3)


def run_batch(cfg: Config, *, reports: bool = True) -> RunSummary:
    """One batch: ingest, score, alert, deliver, and reports on the configured cadence."""
    with configured_warehouse(cfg) as con:
        with ledger(con, "run", policy=run_policy(cfg)) as rec:
            run_stages(con, cfg, rec, reports=reports)
        return RunSummary(rec.run_id, rec.status, rec.counts, rec.policy, rec.error)
