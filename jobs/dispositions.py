"""Analysts' dispositions: the fastest labels fraudwatch gets (issue 18).

An analyst reviews an alert and confirms fraud or clears it, within hours; the chargeback
comes weeks later. A disposition arrives two ways:

- the **dispositions feed** (``[source] dispositions``): landing files (CSV, Parquet, JSON
  lines) with transaction id, disposition, analyst, review time and an optional note,
  mapped by ``[source.disposition_columns]``, read once each like every feed (the
  ``ingested_files`` ledger, feed ``dispositions``); bad rows are quarantined with a
  reason naming the file, the row and the field;
- ``fraudwatch alerts review TRANSACTION_ID --fraud|--legit`` (:func:`record_review`),
  recorded with the actor the audit trail names.

Every decision is kept in ``dispositions``. One that says fraud or legitimate
(``[dispositions]`` says which values do) also becomes a label, ``source =
'disposition'``, ``reported_at`` = the review time: features (merchant risk), training,
the gate and the performance report read ``labels``, so they use it at once.

**Chargebacks win.** Every reader takes a transaction's latest label (by
``reported_at``), so a chargeback reported after the review overrides it. A disposition
made after a chargeback was already reported adds nothing: its label is not written, or
is deleted when the chargeback's feed arrives later with an earlier ``reported_at``
(:func:`reconcile`). The decision stays in ``dispositions``, and
:func:`jobs.alert_reviews.overturned` counts how often a chargeback disagreed with the analyst.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from jobs import logs
from jobs.alert_reviews import LABEL_SOURCE, LATEST
from jobs.config import Config, Dispositions
from jobs.errors import ConfigError, FraudwatchError, InputFileError
from jobs.ingest_load import set_aside
from jobs.ingest_read import drop_staged, stage
from jobs.ingest_sql import lit, present, quarantine_insert, split_problem, text, ts
from jobs.landing import FileResult, Found, Landing, glob_folder, look_up
from jobs.runs import utcnow
from jobs.warehouse import is_disk_full, transaction

log = logs.get("dispositions")

FEED = "dispositions"
REVIEW_FILE = "fraudwatch alerts review"  # source_file of decisions made on the command line
COLUMNS = ("transaction_id", "disposition", "analyst", "reviewed_at")


@dataclass(frozen=True)
class Review:
    """What ``alerts review`` recorded."""

    transaction_id: str
    disposition: str
    is_fraud: bool | None
    analyst: str
    reviewed_at: datetime
    note: str | None
    alerted: bool  # the transaction was alerted on
    labelled: bool  # it became a label
    chargeback: bool | None  # a chargeback already known for it (its is_fraud), else None
    previous: str | None  # the disposition it replaces, if any

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "reviewed_at": self.reviewed_at.isoformat(sep=" ")}


# -- the feed -----------------------------------------------------------------------------------
def find_files(cfg: Config) -> Found:
    """The dispositions feed's landing files, in path order (like every feed's)."""
    pattern = cfg.dispositions_glob
    found = Found()
    if not pattern:
        return found
    folder = glob_folder(pattern)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ConfigError(
            f"{cfg.path}: source.dispositions = {pattern!r}: the folder {folder} {what} "
            "(relative paths resolve against the config file's folder); create it or fix the glob"
        )
    marker = cfg.settings.source.ready_marker
    for p in sorted(glob.glob(pattern, recursive=True)):
        path = Path(p)
        if path.name.startswith(".") or path.name == marker or not os.path.isfile(path):
            continue
        (found.waiting if marker and not (path.parent / marker).exists() else found.ready).append(
            path
        )
    return found


def ingest_dispositions(con: duckdb.DuckDBPyConnection, cfg: Config) -> list[FileResult]:
    """Every new or changed file of the dispositions feed, each in one transaction; a file
    that cannot be read is set aside and the others go on."""
    out: list[FileResult] = []
    for path in find_files(cfg).ready:
        got = look_up(con, cfg.root, path, FEED)
        out.append(got if isinstance(got, FileResult) else _ingest_file(con, cfg, got))
    # chargebacks just ingested may be reported before a decision's review: they win
    if con.execute("SELECT count(*) FROM labels WHERE source = ?", [LABEL_SOURCE]).fetchall()[0][0]:
        with transaction(con):
            if n := reconcile(con):
                logs.event(log, "disposition labels superseded by chargebacks", n=n)
    return out


def _mapping(
    dc: Mapping[Any, str], have: list[str], path: Path
) -> tuple[dict[str, str], str | None]:
    mapping = {c: dc.get(c, c) for c in COLUMNS}  # type: ignore[call-overload]
    for canonical, source in mapping.items():
        if source not in have:
            raise InputFileError(
                str(path),
                f"missing (mapped to {canonical!r} by source.disposition_columns; the file "
                f"has: {', '.join(have) or 'no columns'})",
                column=source,
            )
    note = dc.get("note", "note")
    if note not in have:
        if "note" in dc:  # mapped explicitly: the file must have it
            raise InputFileError(
                str(path), "missing (mapped to 'note' by source.disposition_columns)", column=note
            )
        return mapping, None
    return mapping, note


def _values_sql(values: list[str]) -> str:
    return "[" + ", ".join(lit(v) for v in values) + "]::VARCHAR[]"


def _check(con: duckdb.DuckDBPyConnection, cfg: Config, f: Landing, types: dict[str, str]) -> None:
    """``fw_checked``: the file's rows typed, each with its problem (``reason``, ``field``,
    ``detail``; ``_same`` for a row of a changed file that is already stored)."""
    m, note = _mapping(cfg.settings.source.disposition_columns, list(types), f.path)
    d = cfg.settings.dispositions
    s = cfg.settings.source
    horizon = utcnow() + timedelta(hours=s.future_tolerance_hours)
    known = ", ".join(
        f"{k} ({', '.join(getattr(d, k))})" for k in ("fraud", "legitimate", "no_label")
    )
    checks = [
        "WHEN __malformed IS NOT NULL THEN __malformed",
        "WHEN transaction_id IS NULL THEN 'missing_field|transaction_id|'",
        "WHEN disposition IS NULL THEN 'missing_field|disposition|'",
        "WHEN analyst IS NULL THEN 'missing_field|analyst|'",
        "WHEN __miss_reviewed_at THEN 'missing_field|reviewed_at|'",
        "WHEN reviewed_at IS NULL THEN 'bad_timestamp|reviewed_at|not a timestamp'",
        f"WHEN reviewed_at > TIMESTAMP '{horizon:%Y-%m-%d %H:%M:%S}' THEN "
        f"'future_timestamp|reviewed_at|later than now + {s.future_tolerance_hours:g} h'",
        f"WHEN NOT list_contains({_values_sql(d.fraud + d.legitimate + d.no_label)}, "
        f"disposition) THEN 'bad_disposition|disposition|' || {lit(chr(39))} || disposition "
        f"|| {lit(chr(39) + ' is none of ' + known + ': see [dispositions]')}",
        "WHEN tx_time IS NULL THEN 'unknown_transaction|transaction_id|no such transaction "
        "in the warehouse'",
        "WHEN reviewed_at < tx_time THEN 'bad_timestamp|reviewed_at|before the transaction "
        "(' || strftime(tx_time, '%Y-%m-%d %H:%M:%S') || ')'",
    ]
    note_sql = text(note, types) if note else "NULL::VARCHAR"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE fw_checked AS
        WITH typed AS (
            SELECT __row, {text(m["transaction_id"], types)} AS transaction_id,
                   lower({text(m["disposition"], types)}) AS disposition,
                   {text(m["analyst"], types)} AS analyst,
                   {ts(m["reviewed_at"], types)} AS reviewed_at,
                   {note_sql} AS note, __malformed,
                   NOT ({present(m["reviewed_at"], types)}) AS __miss_reviewed_at
            FROM fw_raw),
        tx AS (
            SELECT transaction_id, min(event_time) AS tx_time FROM transactions
            WHERE transaction_id IN (SELECT transaction_id FROM typed) GROUP BY 1),
        checked AS (
            SELECT typed.*, tx.tx_time, CASE {" ".join(checks)} END AS problem
            FROM typed LEFT JOIN tx USING (transaction_id)),
        dedup AS (
            SELECT c.*, CASE
                WHEN c.problem IS NOT NULL THEN NULL
                WHEN same.source_row IS NOT NULL THEN '_same||'
                WHEN row_number() OVER (PARTITION BY c.transaction_id, c.disposition,
                         c.reviewed_at, c.problem IS NULL ORDER BY c.__row) > 1
                  OR seen.transaction_id IS NOT NULL
                THEN 'duplicate_disposition|transaction_id|the same decision at the same time '
                     || 'is already recorded' END AS dup
            FROM checked c
            LEFT JOIN (SELECT source_row, transaction_id, disposition, reviewed_at
                       FROM dispositions WHERE source_file = {lit(f.name)}) same
              ON same.source_row = c.__row AND same.transaction_id = c.transaction_id
             AND same.disposition = c.disposition AND same.reviewed_at = c.reviewed_at
            LEFT JOIN (SELECT DISTINCT transaction_id, disposition, reviewed_at
                       FROM dispositions) seen
              ON seen.transaction_id = c.transaction_id AND seen.disposition = c.disposition
             AND seen.reviewed_at = c.reviewed_at)
        SELECT *, CASE WHEN disposition IN (SELECT unnest({_values_sql(d.fraud)})) THEN true
                       WHEN disposition IN (SELECT unnest({_values_sql(d.legitimate)}))
                       THEN false END AS is_fraud,
               {split_problem("coalesce(problem, dup)")}
        FROM dedup
        """
    )


def _load(con: duckdb.DuckDBPyConnection, name: str, now: datetime) -> int:
    """Store the good rows of ``fw_checked`` and write their labels; the labels written."""
    con.execute(
        "INSERT INTO dispositions SELECT transaction_id, disposition, is_fraud, analyst, "
        "reviewed_at, note, ?, __row, ? FROM fw_checked WHERE reason IS NULL",
        [name, now],
    )
    return _write_labels(
        con,
        "SELECT transaction_id, is_fraud, reviewed_at, __row AS source_row "
        "FROM fw_checked WHERE reason IS NULL AND is_fraud IS NOT NULL",
        name,
        now,
    )


def _write_labels(con: duckdb.DuckDBPyConnection, rows: str, name: str, now: datetime) -> int:
    """Labels for decisions ``rows`` (transaction_id, is_fraud, reviewed_at, source_row),
    unless a chargeback was reported for the transaction by the review time; then
    :func:`reconcile`, and the known-frauds keys refreshed. Inside the caller's transaction."""
    n = con.execute(
        f"""
        INSERT INTO labels (transaction_id, is_fraud, reported_at, source_file, source_row,
                            ingested_at, source)
        SELECT r.transaction_id, r.is_fraud, r.reviewed_at, ?, r.source_row, ?, ?
        FROM ({rows}) r
        WHERE NOT EXISTS (SELECT 1 FROM labels c WHERE c.transaction_id = r.transaction_id
                          AND c.source <> ? AND c.reported_at <= r.reviewed_at)
        RETURNING 1
        """,
        [name, now, LABEL_SOURCE, LABEL_SOURCE],
    ).fetchall()
    reconcile(con)
    return len(n)


def reconcile(con: duckdb.DuckDBPyConnection) -> int:
    """Delete the disposition labels that a chargeback reported at or before their review
    time makes moot (the chargeback was known then: it wins); the decisions stay in
    ``dispositions``. Returns how many; refreshes the known-frauds keys when labels moved."""
    gone = con.execute(
        "DELETE FROM labels l WHERE l.source = ? AND EXISTS (SELECT 1 FROM labels c "
        "WHERE c.transaction_id = l.transaction_id AND c.source <> ? "
        "AND c.reported_at <= l.reported_at) RETURNING 1",
        [LABEL_SOURCE, LABEL_SOURCE],
    ).fetchall()
    _refresh_keys(con)
    return len(gone)


def _refresh_keys(con: duckdb.DuckDBPyConnection) -> None:
    """The features' keyed state (:mod:`jobs.keys`: the known frauds) refreshed after labels
    are written or deleted, inside the same transaction."""
    from jobs.keys import assign_keys

    assign_keys(con)


def _ingest_file(con: duckdb.DuckDBPyConnection, cfg: Config, f: Landing) -> FileResult:
    try:
        types = stage(con, f.path, cfg.settings.source, "fw_raw")
        with transaction(con):
            _check(con, cfg, f, types)
            now = utcnow()
            labels = _load(con, f.name, now)
            res = _record(con, f, list(types), labels, now)
    except (InputFileError, duckdb.Error) as exc:
        if isinstance(exc, duckdb.Error) and is_disk_full(exc):
            raise
        err = (
            exc
            if isinstance(exc, InputFileError)
            else InputFileError(str(f.path), f"cannot be read: {str(exc).splitlines()[0]}")
        )
        res = set_aside(con, f, FEED, err)
    finally:
        drop_staged(con, "fw_raw")
        con.execute("DROP TABLE IF EXISTS temp.fw_checked")
    logs.event(log, "file ingested", **res.to_dict())
    return res


def _record(
    con: duckdb.DuckDBPyConnection, f: Landing, cols: list[str], labels: int, now: datetime
) -> FileResult:
    """Quarantine the bad rows and write the file's ledger row (``changed`` for a new
    version of an ingested file: its new decisions loaded, the known ones left alone)."""
    read, loaded, same = (
        int(v)
        for v in con.execute(
            "SELECT count(*), count(*) FILTER (WHERE reason IS NULL), "
            "count(*) FILTER (WHERE reason = '_same') FROM fw_checked"
        ).fetchall()[0]
    )
    bad = read - loaded - same
    if bad:
        con.execute(quarantine_insert(Path(f.name), FEED, cols, "fw_raw", skip_known=True), [now])
    status = "changed" if f.changed else "ingested"
    note = (
        f"changed after ingestion: {loaded} new decision(s) loaded, {same} already recorded"
        if f.changed
        else None
    )
    con.execute(
        "INSERT OR REPLACE INTO ingested_files (path, feed, size_bytes, sha256, rows_read, "
        "rows_loaded, rows_quarantined, ingested_at, status, note, previous_sha256) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [f.name, FEED, f.size, f.digest, read, loaded, bad, now, status, note,
         f.prior.sha256 if f.prior else None],
    )  # fmt: skip
    return FileResult(
        f.name, FEED, status, read, loaded, bad, labels, rows_unchanged=same, note=note
    )


# -- one decision from the command line --------------------------------------------------------
def record_review(
    con: duckdb.DuckDBPyConnection,
    d: Dispositions,
    transaction_id: str,
    disposition: str,
    analyst: str,
    *,
    reviewed_at: datetime | None = None,
    note: str | None = None,
) -> Review:
    """Record one analyst's decision (``alerts review``) and its label, in one transaction."""
    tid = transaction_id.strip()
    value = disposition.strip().lower()
    try:
        is_fraud = d.meaning(value)
    except KeyError:
        raise ConfigError(
            f"disposition {disposition!r} is none of fraud {d.fraud}, legitimate "
            f"{d.legitimate}, no_label {d.no_label} (see [dispositions])"
        ) from None
    when = reviewed_at or utcnow()
    found = con.execute(
        "SELECT min(event_time) FROM transactions WHERE transaction_id = ?", [tid]
    ).fetchall()[0][0]
    if found is None:
        raise FraudwatchError(f"no transaction {tid!r} in the warehouse: nothing recorded")
    if when < found:
        raise ConfigError(
            f"the review time {when:%Y-%m-%d %H:%M:%S} is before the transaction "
            f"({found:%Y-%m-%d %H:%M:%S}): nothing recorded"
        )
    alerted = bool(
        con.execute("SELECT count(*) FROM alerts WHERE transaction_id = ?", [tid]).fetchall()[0][0]
    )
    prev = con.execute(
        f"SELECT disposition FROM ({LATEST}) WHERE transaction_id = ?", [tid]
    ).fetchall()
    chargeback = con.execute(
        "SELECT arg_max(is_fraud, reported_at) FROM labels WHERE transaction_id = ? "
        "AND source <> ? AND reported_at <= ?",
        [tid, LABEL_SOURCE, when],
    ).fetchall()[0][0]
    now = utcnow()
    with transaction(con):
        row = 1 + int(
            con.execute(
                "SELECT coalesce(max(source_row), 0) FROM dispositions WHERE source_file = ?",
                [REVIEW_FILE],
            ).fetchall()[0][0]
        )
        con.execute(
            "INSERT INTO dispositions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [tid, value, is_fraud, analyst, when, note, REVIEW_FILE, row, now],
        )
        labelled = 0
        if is_fraud is not None:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE fw_review AS SELECT ?::VARCHAR AS transaction_id, "
                "?::BOOLEAN AS is_fraud, ?::TIMESTAMP AS reviewed_at, ?::BIGINT AS source_row",
                [tid, is_fraud, when, row],
            )
            labelled = _write_labels(con, "SELECT * FROM fw_review", REVIEW_FILE, now)
            con.execute("DROP TABLE IF EXISTS temp.fw_review")
    review = Review(
        tid, value, is_fraud, analyst, when, note, alerted, bool(labelled), chargeback,
        prev[0][0] if prev else None,
    )  # fmt: skip
    logs.event(log, "disposition recorded", **review.to_dict())
    return review
