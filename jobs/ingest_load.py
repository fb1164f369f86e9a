"""Loading checked rows into the warehouse: the inserts, the ``ingested_at`` they stamp, and
the ledger rows (``ingested_files``) written with them.

:mod:`jobs.ingest` decides what is loaded (whole files, in groups, in one
transaction); these statements write it. ``ingested_at`` only ever increases,
because scoring finds the rows it has not searched yet by it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from jobs import logs
from jobs.config import Source
from jobs.errors import InputFileError
from jobs.ingest_checks import REQUIRED
from jobs.ingest_sql import lit, q, quarantine_insert
from jobs.keys import add_to_dictionaries, keyed_values
from jobs.landing import LOADED, SET_ASIDE, FileResult, IngestResult, Landing
from jobs.runs import utcnow

log = logs.get("ingest")


def load_transactions(
    con: duckdb.DuckDBPyConnection, s: Source, rows: str, names: list[str]
) -> list[int]:
    """Insert good rows and their inline labels, one statement each: ``rows`` yields only
    good rows, each with ``__file``, its file's index in ``names`` (as recorded). Returns
    the inline labels loaded per file."""
    extras = [*s.numeric_columns, *s.categorical_columns]
    names_ = [*REQUIRED, *(q(e) for e in extras)]
    cols = ", ".join(names_)
    source = "[" + ", ".join(lit(n) for n in names) + "][r.__file + 1]"
    now = ingest_stamp(con)
    # the rows go in with their keys (jobs/keys.py), which assign_keys then finds in place
    add_to_dictionaries(con, rows)
    joins, keys = keyed_values("r")
    con.execute(
        f"INSERT INTO transactions ({cols}, source_file, source_row, ingested_at, card_key, "
        f"merchant_key, amount_e4) SELECT {', '.join(f'r.{n}' for n in names_)}, {source}, "
        f"r.__row, ?, {keys} FROM ({rows}) r {joins}",
        [now],
    )
    per_file = [0] * len(names)
    if s.columns.label:
        con.execute(
            "INSERT INTO labels (transaction_id, is_fraud, reported_at, source_file, source_row, "
            f"ingested_at) SELECT r.transaction_id, r.label, r.event_time + to_days(?), {source}, "
            f"r.__row, ? FROM ({rows}) r WHERE r.label IS NOT NULL",
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


def record(
    con: duckdb.DuckDBPyConnection, f: Landing, feed: str, read: int, loaded: int, labels: int
) -> FileResult:
    con.execute(
        "INSERT OR REPLACE INTO ingested_files (path, feed, size_bytes, sha256, rows_read, "
        "rows_loaded, rows_quarantined, ingested_at, status, note, previous_sha256) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'ingested', NULL, ?)",
        [f.name, feed, f.size, f.digest, read, loaded, read - loaded, utcnow(),
         f.prior.sha256 if f.prior else None],
    )  # fmt: skip
    return FileResult(f.name, feed, "ingested", read, loaded, read - loaded, labels)


def set_aside(
    con: duckdb.DuckDBPyConnection, f: Landing, feed: str, exc: InputFileError
) -> FileResult:
    """Record a file that cannot be read: set aside (nothing loaded), or, for a new version
    of an ingested file, a note on its ledger row (the earlier version's rows stay)."""
    why = str(exc).removeprefix(f"{exc.path}: ")
    if not f.path.exists():  # moved away while it was being read: nothing to set aside
        logs.event(log, "landing file vanished while read", "warning", path=f.name, why=why)
        return FileResult(f.name, feed, "vanished")
    if f.changed:
        note = f"a new version (sha256 {f.digest[:12]}…) cannot be read: {why}"
        con.execute(
            "UPDATE ingested_files SET note = ? WHERE path = ? AND feed = ?", [note, f.name, feed]
        )
        res = FileResult(f.name, feed, "unreadable_change", note=note + "; its earlier rows stay")
    else:
        con.execute(
            "INSERT OR REPLACE INTO ingested_files (path, feed, size_bytes, sha256, rows_read, "
            "rows_loaded, rows_quarantined, ingested_at, status, note, previous_sha256) "
            "VALUES (?, ?, ?, ?, 0, 0, 0, ?, ?, ?, ?)",
            [f.name, feed, f.size, f.digest, utcnow(), SET_ASIDE, why,
             f.prior.sha256 if f.prior else None],
        )  # fmt: skip
        res = FileResult(f.name, feed, SET_ASIDE, note=why)
    logs.event(log, "landing file set aside", "error", path=f.name, feed=feed, why=why)
    return res


def quarantine_and_record(
    con: duckdb.DuckDBPyConnection,
    f: Landing,
    feed: str,
    types: dict[str, str],
    view: str,
    labels: int,
) -> FileResult:
    read, loaded = (
        int(v)
        for v in con.execute(
            "SELECT count(*), count(*) FILTER (WHERE reason IS NULL) FROM fw_checked"
        ).fetchall()[0]
    )
    if read > loaded:  # raw values are read back from the file for the bad rows only
        con.execute(quarantine_insert(Path(f.name), feed, list(types), view), [utcnow()])
    return record(con, f, feed, read, loaded, labels)


def summarise(con: duckdb.DuckDBPyConnection, result: IngestResult, started: datetime) -> None:
    """Quarantine reasons of this ingest, and labels that name no known transaction."""
    loaded = [f.path for f in result.files if f.status in LOADED]
    if not loaded:
        return
    rows = con.execute(
        "SELECT reason, count(*) FROM quarantine WHERE source_file IN "
        "(SELECT unnest(?::VARCHAR[])) AND quarantined_at >= ? GROUP BY reason",
        [loaded, started],
    ).fetchall()
    result.quarantined_by_reason = {r: int(n) for r, n in rows}
    feeds = [f.path for f in result.files if f.status in LOADED and f.feed == "labels"]
    if feeds:
        # the hash table is built on the new labels' ids, and the range filter lets DuckDB
        # skip row groups of transactions whose ids are all outside theirs (zonemaps)
        n, examples = con.execute(
            """
            WITH mine AS (
                SELECT transaction_id, source_file, source_row FROM labels
                WHERE source_file IN (SELECT unnest(?::VARCHAR[])) AND ingested_at >= ?),
            known AS (
                SELECT DISTINCT t.transaction_id FROM transactions t
                SEMI JOIN mine USING (transaction_id)
                WHERE t.transaction_id BETWEEN (SELECT min(transaction_id) FROM mine)
                                           AND (SELECT max(transaction_id) FROM mine))
            SELECT count(*), list(transaction_id ORDER BY source_file, source_row)[1:3]
            FROM mine ANTI JOIN known USING (transaction_id)
            """,
            [feeds, started],
        ).fetchall()[0]
        result.orphan_labels, result.orphan_examples = int(n), list(examples or [])
        if n:
            logs.event(log, "labels for unknown transactions", "warning", n=n, examples=examples)
