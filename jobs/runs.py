"""The `runs` ledger: one row per job run, with its status, counts per stage and error.

A run row is written as ``running`` when the job starts and committed at once,
so a run killed half-way stays visible. The next job that opens the warehouse
(which it holds alone: DuckDB allows one writer) marks such leftovers
``interrupted``: no live process can still own them.
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


def mark_interrupted(con: duckdb.DuckDBPyConnection) -> int:
    """Mark runs left ``running`` by a dead process as ``interrupted``; return how many."""
    rows = con.execute(
        "UPDATE runs SET status = 'interrupted', "
        "error = coalesce(error, 'the process stopped before the run finished') "
        "WHERE status = 'running' RETURNING run_id"
    ).fetchall()
    for (run_id,) in rows:
        logs.event(log, "earlier run was interrupted", run_id=run_id)
    return len(rows)


@contextmanager
def ledger(
    con: duckdb.DuckDBPyConnection, job: str, policy: dict[str, Any] | None = None
) -> Iterator[RunRecord]:
    """Record a run of ``job``: ``running`` now, then ``ok`` or ``failed`` with the error."""
    mark_interrupted(con)
    rec = RunRecord(run_id=new_run_id(job), job=job, started_at=utcnow(), policy=policy or {})
    con.execute(
        "INSERT INTO runs (run_id, job, started_at, status, counts, policy) "
        "VALUES (?, ?, ?, 'running', ?, ?)",
        [rec.run_id, job, rec.started_at, json.dumps(rec.counts), json.dumps(rec.policy)],
    )
    logs.event(log, "run started", run_id=rec.run_id, job=job, pid=os.getpid())
    try:
        yield rec
    except BaseException as exc:
        rec.status = "failed"
        rec.error = f"{type(exc).__name__}: {exc}"
        _finish(con, rec)
        raise
    rec.status = "ok"
    _finish(con, rec)


def _finish(con: duckdb.DuckDBPyConnection, rec: RunRecord) -> None:
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
