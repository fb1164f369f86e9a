"""A changed landing file on Spark: a new version of an ingested file, the DuckDB path's rules.

As :mod:`jobs.ingest_revise` does it (a plain ingest; ``--reingest`` is the DuckDB engine's):

- transactions: each row of the new version is checked in its Spark task against the rows
  the file loaded before, by the DuckDB path's own SQL (:func:`jobs.spark.file_rows`): a row
  loaded before with the same values is ``_same`` (left as it is, never quarantined); one
  whose values differ is quarantined as ``changed_after_ingest`` (the stored row stays); a
  new row is loaded like any row; rows of the earlier version missing from the new one stay
  and are counted (``rows_gone``). A label that changed on a row that did not is loaded;
- labels: the new version's new labels are loaded, the ones it loaded before are ``_same``;
- quarantine: a row already quarantined from the file (same row, reason and raw values) is
  not added again;
- the ledger: a new row for the file (the ``ingested_files`` view reads the latest row of a
  path), status ``changed``, the new sha256 with the old one in ``previous_sha256``, the
  file's rows and quarantined rows counted over both versions, and the DuckDB path's note.

Everything goes in the ingest's one commit, so a failure leaves the tables as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb

from jobs.landing import FileResult, Landing

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

SAME = "_same"


@dataclass(frozen=True)
class Prior:
    """What the tables hold of a changed file before this ingest."""

    ledger: dict[str, Any]  # its ledger row
    loaded: int = 0  # its rows in transactions (or labels, for the labels feed)
    quarantined: int = 0  # its rows in quarantine


def ledger_row(con: duckdb.DuckDBPyConnection, name: str, feed: str) -> dict[str, Any]:
    cur = con.execute("SELECT * FROM ingested_files WHERE path = ? AND feed = ?", [name, feed])
    cols = [d[0] for d in cur.description or []]
    return dict(zip(cols, cur.fetchall()[0], strict=True))


def priors(con: duckdb.DuckDBPyConnection, feed: str, files: list[Landing]) -> dict[int, Prior]:
    """The changed files' ledger rows and counts, by their index in ``files``."""
    table = "transactions" if feed == "transactions" else "labels"
    out = {}
    for i, f in enumerate(files):
        if not f.changed:
            continue
        loaded = con.execute(
            f"SELECT count(*) FROM {table} WHERE source_file = ?", [f.name]
        ).fetchall()[0][0]
        quarantined = con.execute(
            "SELECT count(*) FROM quarantine WHERE source_file = ? AND feed = ?", [f.name, feed]
        ).fetchall()[0][0]
        out[i] = Prior(ledger_row(con, f.name, feed), int(loaded), int(quarantined))
    return out


def same_labels(rows: DataFrame, known: DataFrame, source: Column, changed: list[int]) -> Any:
    """Label rows of changed files that the file loaded before: ``_same``, not duplicates."""
    from pyspark.sql import functions as F

    mine = (
        known.select(F.col("source_file").alias("__src"), "transaction_id", "is_fraud")
        .distinct()
        .withColumn("__mine", F.lit(True))
    )
    marked = rows.withColumn("__src", source).join(
        mine, ["__src", "transaction_id", "is_fraud"], "left"
    )
    hit = (
        (F.col("reason") == "duplicate_label")
        & F.col("__file").isin(changed)
        & F.col("__mine").isNotNull()
    )
    return (
        marked.withColumn("reason", F.when(hit, F.lit(SAME)).otherwise(F.col("reason")))
        .withColumn("field", F.when(hit, F.lit(None)).otherwise(F.col("field")))
        .withColumn("detail", F.when(hit, F.lit(None)).otherwise(F.col("detail")))
        .drop("__src", "__mine")
    )


def new_quarantine(quarantined: DataFrame, existing: DataFrame, changed: list[str]) -> Any:
    """Leave out the rows of changed files already quarantined (same row, reason, raw)."""
    from pyspark.sql import functions as F

    if not changed:
        return quarantined
    old = existing.filter(F.col("source_file").isin(changed)).select(
        F.col("source_file").alias("k_file"),
        F.col("feed").alias("k_feed"),
        F.col("source_row").alias("k_row"),
        F.col("reason").alias("k_reason"),
        F.col("raw").alias("k_raw"),
    )
    match = (
        (F.col("source_file") == F.col("k_file"))
        & (F.col("feed") == F.col("k_feed"))
        & (F.col("source_row") == F.col("k_row"))
        & (F.col("reason") == F.col("k_reason"))
        & F.col("raw").eqNullSafe(F.col("k_raw"))
    )
    return quarantined.join(old, match, "left_anti")


def gone(
    prior_rows: DataFrame, rows: DataFrame, source: Column, changed: list[int]
) -> dict[str, int]:
    """Per changed file: its earlier rows whose id is not in its new version."""
    from pyspark.sql import functions as F

    if not changed:
        return {}
    ids = (
        rows.filter(F.col("__file").isin(changed) & F.col("transaction_id").isNotNull())
        .select(source.alias("source_file"), "transaction_id")
        .distinct()
    )
    left = prior_rows.join(ids, ["source_file", "transaction_id"], "left_anti")
    return {str(r[0]): int(r[1]) for r in left.groupBy("source_file").count().collect()}


def changed_file(
    f: Landing,
    feed: str,
    prior: Prior,
    counts: dict[str, int],
    stamp: Any,
) -> tuple[dict[str, Any], FileResult]:
    """The ledger row and the result of a changed file, as the DuckDB path words them."""
    read, loaded, same = counts["read"], counts["loaded"], counts["same"]
    quarantined, labels = counts["quarantined"], counts["labels"]
    if feed == "transactions":
        note = (
            f"changed after it was ingested: {loaded} row(s) loaded, {same} unchanged, "
            f"{counts['changed']} changed (quarantined as changed_after_ingest), "
            f"{counts['gone']} gone from the new version (kept)"
        )
    else:
        note = f"changed after it was ingested: {loaded} label(s) loaded, {same} unchanged"
        labels = loaded
    row = {
        **prior.ledger,
        "size_bytes": f.size,
        "sha256": f.digest,
        "rows_read": read,
        "rows_loaded": prior.loaded + loaded,
        "rows_quarantined": prior.quarantined + quarantined,
        "ingested_at": stamp,
        "status": "changed",
        "note": note,
        "previous_sha256": prior.ledger["sha256"],
    }
    result = FileResult(
        f.name,
        feed,
        "changed",
        rows_read=read,
        rows_loaded=loaded,
        rows_quarantined=quarantined,
        labels_loaded=labels,
        rows_unchanged=same,
        rows_changed=counts["changed"] if feed == "transactions" else 0,
        rows_gone=counts["gone"] if feed == "transactions" else 0,
        note=note,
    )
    return row, result


def unreadable_change(
    f: Landing, feed: str, prior: Prior, why: str, stamp: Any
) -> tuple[dict[str, Any], FileResult]:
    """A new version that cannot be read: the earlier rows stay, the ledger row keeps the
    old sha256 (so the file is read again next time) with a note."""
    note = f"a new version (sha256 {f.digest[:12]}…) cannot be read: {why}"
    row = {**prior.ledger, "note": note, "ingested_at": stamp}
    return row, FileResult(f.name, feed, "unreadable_change", note=note + "; its earlier rows stay")
