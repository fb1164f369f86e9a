"""A landing file whose content changed after it was ingested: never silently ignored.

A plain ingest that finds a new version of an ingested file (a writer that was still
writing when the file was first read, or an upstream that rewrote it) reads it like any
file, then compares it with what the file loaded before, by ``transaction_id``:

- a row loaded before with the same values is left as it is;
- a row loaded before whose values differ is quarantined as ``changed_after_ingest``
  (field: the first column that differs; detail: the stored value). The stored row stays:
  it may already be scored and alerted on, and which version is right is a person's call;
- a row new to the file is loaded (checked like any row);
- rows of the earlier version missing from the new one stay, and are counted.

The ledger row gets the new sha256 (the old one in ``previous_sha256``), status
``changed`` and a note; the ingest (and the run) reports it and exits 1.

``fraudwatch ingest --reingest PATH`` replaces the file's rows by its current content in
one transaction: rows that differ or are gone are deleted with their scores (the champion
scores the new values on the next run; alerts stay, they were sent) and inline labels; the
file's quarantine rows are replaced; ledger status ``reingested``.

For the labels feed, labels are facts: a new version's new labels are loaded, and
``--reingest`` replaces the file's labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from jobs.config import Source
from jobs.ingest_checks import REQUIRED, check_labels, check_transactions
from jobs.ingest_load import load_labels, load_transactions
from jobs.ingest_sql import lit, q, quarantine_insert
from jobs.landing import FileResult, Landing
from jobs.runs import utcnow


def _compare(con: duckdb.DuckDBPyConnection, s: Source, name: str, replace: bool) -> None:
    """Mark the rows of ``fw_checked`` this file loaded before: ``_same``, or changed
    (quarantined, or with ``replace`` loaded in place of the old row)."""
    cols = [*REQUIRED, *s.numeric_columns, *s.categorical_columns]
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE fw_prior AS SELECT {', '.join(q(c) for c in cols)} "
        "FROM transactions WHERE source_file = ?",
        [name],
    )
    same = " AND ".join(f"c.{q(c)} IS NOT DISTINCT FROM p.{q(c)}" for c in cols)
    differs = [(f"c.{q(c)} IS DISTINCT FROM p.{q(c)}", c) for c in cols]
    field = "CASE " + " ".join(f"WHEN {d} THEN {lit(c)}" for d, c in differs) + " END"
    old = (
        "CASE "
        + " ".join(
            f"WHEN {d} THEN coalesce(CAST(p.{q(c)} AS VARCHAR), 'missing')" for d, c in differs
        )
        + " END"
    )
    tip = f"; `fraudwatch ingest --reingest {name}` replaces the file's rows"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE fw_cmp AS
        SELECT c.__row, {same} AS same, {field} AS field,
               'ingested earlier as ' || {field} || ' = ' || {old} || {lit(tip)} AS detail
        FROM fw_checked c JOIN fw_prior p USING (transaction_id)
        WHERE c.reason = 'duplicate_in_warehouse'
        """
    )
    changed = "NULL" if replace else "'changed_after_ingest'"
    keep = "m.same OR true" if replace else "m.same"
    con.execute(
        f"""
        UPDATE fw_checked SET reason = CASE WHEN m.same THEN '_same' ELSE {changed} END,
            field = CASE WHEN {keep} THEN NULL ELSE m.field END,
            detail = CASE WHEN {keep} THEN NULL ELSE m.detail END
        FROM fw_cmp m WHERE fw_checked.__row = m.__row
        """
    )


def _replace_prior(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Delete the file's earlier rows not kept as they are, with their scores and labels."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE fw_dropped AS SELECT transaction_id FROM fw_prior "
        "WHERE transaction_id NOT IN (SELECT transaction_id FROM fw_checked "
        "WHERE reason = '_same')"
    )
    dropped = "(SELECT transaction_id FROM fw_dropped)"
    con.execute(f"DELETE FROM scores WHERE transaction_id IN {dropped}")
    con.execute(f"DELETE FROM labels WHERE source_file = ? AND transaction_id IN {dropped}", [name])
    con.execute(
        f"DELETE FROM transactions WHERE source_file = ? AND transaction_id IN {dropped}", [name]
    )


def _gone(con: duckdb.DuckDBPyConnection) -> int:
    return int(
        con.execute(
            "SELECT count(*) FROM fw_prior WHERE transaction_id NOT IN "
            "(SELECT transaction_id FROM fw_checked WHERE transaction_id IS NOT NULL)"
        ).fetchall()[0][0]
    )


def _counts(con: duckdb.DuckDBPyConnection) -> tuple[int, int, int, int]:
    read, loaded, same, changed = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE reason IS NULL), "
        "count(*) FILTER (WHERE reason = '_same'), "
        "count(*) FILTER (WHERE reason = 'changed_after_ingest') FROM fw_checked"
    ).fetchall()[0]
    return int(read), int(loaded), int(same), int(changed)


def revise_transactions(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    f: Landing,
    typed: str,
    problem: str,
    cols: list[str],
    view: str,
    *,
    replace: bool,
) -> FileResult:
    """A new version of an ingested transactions file (inside the caller's transaction)."""
    check_transactions(con, typed, problem)
    _compare(con, source, f.name, replace)
    gone = _gone(con)
    if replace:
        _replace_prior(con, f.name)
        con.execute(
            "DELETE FROM quarantine WHERE source_file = ? AND feed = 'transactions'", [f.name]
        )
    read, loaded, same, changed = _counts(con)
    good = "SELECT *, 0 AS __file FROM fw_checked WHERE reason IS NULL"
    [labels] = load_transactions(con, source, good, [f.name])
    if source.columns.label:  # a label that changed on a row that did not
        labels += _count(
            con,
            "INSERT INTO labels (transaction_id, is_fraud, reported_at, source_file, source_row, "
            "ingested_at) SELECT transaction_id, label, event_time + to_days(?), ?, __row, ? "
            "FROM fw_checked c WHERE reason = '_same' AND label IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM labels l WHERE l.transaction_id = c.transaction_id "
            "AND l.is_fraud = c.label)",
            [source.label_delay_days, f.name, utcnow()],
        )
    quarantined = _count(
        con,
        quarantine_insert(Path(f.name), "transactions", cols, view, skip_known=not replace),
        [utcnow()],
    )
    status = "reingested" if replace else "changed"
    note = (
        f"{'replaced by --reingest' if replace else 'changed after it was ingested'}: "
        f"{loaded} row(s) loaded, {same} unchanged, {changed} changed (quarantined as "
        f"changed_after_ingest), {gone} gone from the new version"
        + (" (deleted)" if replace else " (kept)")
    )
    _update_ledger(con, f, "transactions", read, status, note)
    return FileResult(
        f.name,
        "transactions",
        status,
        rows_read=read,
        rows_loaded=loaded,
        rows_quarantined=quarantined,
        labels_loaded=labels,
        rows_unchanged=same,
        rows_changed=changed,
        rows_gone=gone,
        note=note,
    )


def revise_labels(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    f: Landing,
    types: dict[str, str],
    *,
    replace: bool,
) -> FileResult:
    """A new version of an ingested labels file (inside the caller's transaction)."""
    if replace:
        con.execute("DELETE FROM labels WHERE source_file = ?", [f.name])
        con.execute("DELETE FROM quarantine WHERE source_file = ? AND feed = 'labels'", [f.name])
    check_labels(con, source, f.path, types)
    con.execute(
        "UPDATE fw_checked SET reason = '_same', field = NULL, detail = NULL "
        "WHERE reason = 'duplicate_label' AND EXISTS (SELECT 1 FROM labels l WHERE "
        "l.source_file = ? AND l.transaction_id = fw_checked.transaction_id "
        "AND l.is_fraud = fw_checked.is_fraud)",
        [f.name],
    )
    read, loaded, same, _ = _counts(con)
    load_labels(con, Path(f.name))
    quarantined = _count(
        con,
        quarantine_insert(Path(f.name), "labels", list(types), "fw_raw", skip_known=not replace),
        [utcnow()],
    )
    status = "reingested" if replace else "changed"
    note = (
        f"{'replaced by --reingest' if replace else 'changed after it was ingested'}: "
        f"{loaded} label(s) loaded, {same} unchanged"
    )
    _update_ledger(con, f, "labels", read, status, note)
    return FileResult(
        f.name,
        "labels",
        status,
        rows_read=read,
        rows_loaded=loaded,
        rows_quarantined=quarantined,
        labels_loaded=loaded,
        rows_unchanged=same,
        note=note,
    )


def _count(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> int:
    rows = con.execute(sql, params).fetchall()
    return int(rows[0][0]) if rows else 0


def _update_ledger(
    con: duckdb.DuckDBPyConnection, f: Landing, feed: str, read: int, status: str, note: str
) -> None:
    table = "transactions" if feed == "transactions" else "labels"
    con.execute(
        f"""
        UPDATE ingested_files SET size_bytes = ?, sha256 = ?, rows_read = ?,
            rows_loaded = (SELECT count(*) FROM {table} WHERE source_file = ?),
            rows_quarantined = (SELECT count(*) FROM quarantine WHERE source_file = ?
                                AND feed = ?),
            ingested_at = ?, status = ?, note = ?, previous_sha256 = ?
        WHERE path = ? AND feed = ?
        """,
        [
            f.size,
            f.digest,
            read,
            f.name,
            f.name,
            feed,
            utcnow(),
            status,
            note,
            f.prior.sha256 if f.prior else None,
            f.name,
            feed,
        ],
    )
