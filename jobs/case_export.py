"""A day's alerts for a case-management system (``fraudwatch alerts export``).

One row per alerted transaction, highest score first: alert day, transaction, event time,
the full card id (a case system contacts the cardholder: the file is written readable by
its owner only), merchant, amount, score, model, the reasons in words and the review status
so far. CSV (reasons joined by `` | ``) or JSON lines (reasons as a list). The file is
written to a temporary name and renamed into place, so a reader never sees half of it;
teams send the decisions back through the dispositions feed (:mod:`jobs.dispositions`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from jobs.alerting import CANDIDATE_COLUMNS
from jobs.config import Config
from jobs.errors import FraudwatchError

# an alert's own columns (as scoring hands them to the outbox), then its review so far
FIELDS = (
    "alert_day",
    *CANDIDATE_COLUMNS,
    "review",
    "disposition",
    "analyst",
    "reviewed_at",
)


@dataclass(frozen=True)
class Exported:
    day: date | None
    rows: int
    path: Path | None  # None: written to stdout


def _text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return value.isoformat() if isinstance(value, date) else value


def render(rows: list[dict[str, Any]], fmt: str) -> str:
    """The rows as CSV (with a header) or JSON lines."""
    buf = io.StringIO()
    if fmt == "jsonl":
        for r in rows:
            buf.write(json.dumps({k: _text(r[k]) for k in FIELDS}, default=str) + "\n")
        return buf.getvalue()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: " | ".join(r[k]) if k == "reasons" else _text(r[k]) for k in FIELDS})
    return buf.getvalue()


def export_alerts(cfg: Config, day: date | None, fmt: str, out: str | None) -> Exported:
    """Write the alerts of ``day`` (default: the latest alert day) to ``out`` ('-' for
    stdout; default ``<data_dir>/exports/alerts-DAY.FORMAT``)."""
    from jobs.alert_reviews import export_rows, latest_alert_day
    from jobs.warehouse import configured_warehouse

    with configured_warehouse(cfg, read_only=True) as con:
        day = day or latest_alert_day(con)
        if day is None:
            raise FraudwatchError("no alerts in the outbox yet: nothing to export")
        rows = export_rows(con, day)
    text = render(rows, fmt)
    if out == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return Exported(day, len(rows), None)
    path = Path(out) if out else cfg.data_dir / "exports" / f"alerts-{day:%Y-%m-%d}.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return Exported(day, len(rows), path)
