"""Loading checked rows into the warehouse: the inserts, and the ``ingested_at`` they stamp.

:mod:`jobs.ingest` decides what is loaded (whole files, in groups, in one
transaction); these statements write it. ``ingested_at`` only ever increases,
because scoring finds the rows it has not searched yet by it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from jobs.config import Config
from jobs.ingest_checks import REQUIRED
from jobs.ingest_sql import lit, q
from jobs.runs import utcnow


def load_transactions(
    con: duckdb.DuckDBPyConnection, cfg: Config, rows: str, names: list[str]
) -> list[int]:
    """Insert good rows and their inline labels, one statement each: ``rows`` yields only
    good rows, each with ``__file``, its file's index in ``names`` (as recorded). Returns
    the inline labels loaded per file."""
    s = cfg.settings.source
    extras = [*s.numeric_columns, *s.categorical_columns]
    cols = ", ".join([*REQUIRED, *(q(e) for e in extras)])
    source = "[" + ", ".join(lit(n) for n in names) + "][__file + 1]"
    now = ingest_stamp(con)
    con.execute(
        f"INSERT INTO transactions ({cols}, source_file, source_row, ingested_at) "
        f"SELECT {cols}, {source}, __row, ? FROM ({rows})",
        [now],
    )
    per_file = [0] * len(names)
    if s.columns.label:
        con.execute(
            "INSERT INTO labels (transaction_id, is_fraud, reported_at, source_file, source_row, "
            f"ingested_at) SELECT transaction_id, label, event_time + to_days(?), {source}, "
            f"__row, ? FROM ({rows}) WHERE label IS NOT NULL",
            [s.label_delay_days, now],
        )
        for i, n in con.execute(
            "SELECT list_position(?::VARCHAR[], source_file) - 1, count(*) FROM labels "
            "WHERE ingested_at = ? AND source_file IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1",
            [names, now, names],
        ).fetchall():
            per_file[int(i)] = int(n)
    return per_file


def ingest_stamp(con: duckdb.DuckDBPyConnection) -> datetime:
    """The ``ingested_at`` of the rows being loaded: now, but always later than every row
    already in the warehouse, even if the clock went back, because scoring finds new rows
    by it (``scoring_state.scored_through``)."""
    last = con.execute("SELECT max(ingested_at) FROM transactions").fetchall()[0][0]
    now = utcnow()
    return now if last is None or now > last else last + timedelta(microseconds=1)


def load_labels(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """The labels feed's good rows (``fw_checked``)."""
    con.execute(
        "INSERT INTO labels (transaction_id, is_fraud, reported_at, source_file, source_row, "
        "ingested_at) SELECT transaction_id, is_fraud, reported_at, ?, __row, ? "
        "FROM fw_checked WHERE reason IS NULL",
        [str(path), utcnow()],
    )
