"""The `runs` ledger: one row per job run, with its status, counts per stage and error.

A run row is written as ``running`` when the job starts and committed at once,
so a run killed half-way stays visible. The next writing job (which holds the
warehouse's writer lock alone) marks such leftovers ``interrupted``: no live
process can still own them.

A job that completed but found something a person must look at (a landing file set
aside or changed after ingestion, alerts that exhausted their attempts) ends
``needs_attention`` with the problems in ``error``; the CLI exits 1 on it.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb

from jobs import logs
from jobs.config import Config

log = logs.get("runs")


def utcnow() -> datetime:
    """Naive UTC 'now' (the warehouse stores naive UTC timestamps)."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_run_id(job: str) -> str:
    return f"{utcnow():%Y%m%dT%H%M%S}-{job}-{secrets.token_hex(3)}"


@dataclass
class RunRecord:
    """A run in progress; stages add their counts to ``counts``."""

    run_id: str
    job: str
    started_at: datetime
    counts: dict[str, Any] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)
    status: str = "running"
    error: str | None = None
    finished_at: datetime | None = None
    problems: list[str] = field(default_factory=list)

    def succeed(self) -> None:
        """Done: ``ok``, or ``needs_attention`` with the problems as the error."""
        self.status = "needs_attention" if self.problems else "ok"
        self.error = "; ".join(self.problems) if self.problems else None

    def fail(self, exc: BaseException) -> None:
        self.status = "failed"
        self.error = f"{type(exc).__name__}: {exc}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "job": self.job,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "counts": self.counts,
            "policy": self.policy,
            "error": self.error,
        }


# runs of this process still going (the scheduler runs jobs side by side in threads):
# another writing process cannot exist (the writer lock), so every other 'running' row is dead
_live: set[str] = set()


def mark_interrupted(con: duckdb.DuckDBPyConnection) -> int:
    """Mark runs left ``running`` by a dead process as ``interrupted``; return how many."""
    rows = con.execute(
        "UPDATE runs SET status = 'interrupted', "
        "error = coalesce(error, 'the process stopped before the run finished') "
        "WHERE status = 'running' AND run_id NOT IN (SELECT unnest(?::VARCHAR[])) "
        "RETURNING run_id",
        [sorted(_live)],
    ).fetchall()
    for (run_id,) in rows:
        logs.event(log, "earlier run was interrupted", run_id=run_id)
    return len(rows)


def start_run(
    con: duckdb.DuckDBPyConnection, job: str, policy: dict[str, Any] | None = None
) -> RunRecord:
    """Write the ``running`` row of a run of ``job`` (committed at once)."""
    mark_interrupted(con)
    rec = RunRecord(run_id=new_run_id(job), job=job, started_at=utcnow(), policy=policy or {})
    con.execute(
        "INSERT INTO runs (run_id, job, started_at, status, counts, policy) "
        "VALUES (?, ?, ?, 'running', ?, ?)",
        [rec.run_id, job, rec.started_at, json.dumps(rec.counts), json.dumps(rec.policy)],
    )
    _live.add(rec.run_id)
    logs.event(log, "run started", run_id=rec.run_id, job=job, pid=os.getpid())
    return rec


@contextmanager
def ledger(
    con: duckdb.DuckDBPyConnection, job: str, policy: dict[str, Any] | None = None
) -> Iterator[RunRecord]:
    """Record a run of ``job``: ``running`` now, then ``ok``, ``needs_attention`` (the
    record's ``problems``) or ``failed`` with the error."""
    rec = start_run(con, job, policy)
    try:
        yield rec
    except BaseException as exc:
        rec.fail(exc)
        finish_run(con, rec)
        raise
    rec.succeed()
    finish_run(con, rec)


@contextmanager
def recorded_run(
    cfg: Config, job: str, policy: dict[str, Any] | None = None
) -> Iterator[RunRecord]:
    """Like :func:`ledger`, for a job that opens the warehouse only while it writes: the
    writer lock is held throughout, the ledger row written by short connections."""
    from jobs.warehouse import configured_warehouse, writer_lock

    with writer_lock(cfg.warehouse_path):
        with configured_warehouse(cfg) as con:
            rec = start_run(con, job, policy)
        try:
            yield rec
        except BaseException as exc:
            rec.fail(exc)
            try:
                with configured_warehouse(cfg) as con:
                    finish_run(con, rec)
            except Exception as again:  # e.g. the disk is still full: the first error matters
                logs.event(
                    log, "run ledger not updated", "error", run_id=rec.run_id, error=str(again)
                )
            raise
        rec.succeed()
        with configured_warehouse(cfg) as con:
            finish_run(con, rec)


def finish_run(con: duckdb.DuckDBPyConnection, rec: RunRecord) -> None:
    """Write the run's final status, counts and error."""
    _live.discard(rec.run_id)
    rec.finished_at = utcnow()
    try:
        con.execute("ROLLBACK")  # in case a stage left a transaction open
    except duckdb.Error:
        pass
    con.execute(
        "UPDATE runs SET status = ?, finished_at = ?, counts = ?, policy = ?, error = ? "
        "WHERE run_id = ?",
        [
            rec.status,
            rec.finished_at,
            json.dumps(rec.counts, default=str),
            json.dumps(rec.policy, default=str),
            rec.error,
            rec.run_id,
        ],
    )
    logs.event(
        log,
        f"run {rec.status}",
        {"failed": "error", "needs_attention": "warning"}.get(rec.status, "info"),
        run_id=rec.run_id,
        job=rec.job,
        seconds=round((rec.finished_at - rec.started_at).total_seconds(), 3),
        counts=rec.counts,
        error=rec.error,
    )


def recent_runs(con: duckdb.DuckDBPyConnection, limit: int = 20) -> list[dict[str, Any]]:
    cur = con.execute(
        "SELECT run_id, job, started_at, finished_at, status, counts, error FROM runs "
        "ORDER BY started_at DESC LIMIT ?",
        [limit],
    )
    cols = [d[0] for d in cur.description]
    out = []
    for row in cur.fetchall():
        item = dict(zip(cols, row, strict=True))
        item["counts"] = json.loads(item["counts"]) if item["counts"] else {}
        out.append(item)
    return out
