"""Ingest by Spark: new landing files into the Parquet tables, whole or not at all.

The same steps and verdicts as :mod:`jobs.ingest`, with the same pieces where they can be
shared: :mod:`jobs.landing` finds the files and asks the ledger about each (the ledger is
the ``ingested_files`` Parquet table, read through DuckDB), each file is read, typed and
checked in a Spark task by the DuckDB path's own SQL (:mod:`jobs.spark.file_rows`), and the
result is an :class:`~jobs.landing.IngestResult` with the same counts and problems.

Spark then does what spans files: a good row whose id came earlier in its file is
``duplicate_in_file``; one whose id is already in the warehouse, or in an earlier file of
this ingest (files are taken in path order, as the DuckDB path loads them one after the
other), is ``duplicate_in_warehouse``; a label already known for that transaction with the
same verdict is ``duplicate_label``. Good rows, inline labels, quarantined rows and the
ledger rows are written in ONE commit (:class:`~jobs.spark.tables.Commit`): an ingest that
fails half-way leaves the tables as they were, and a file is never ingested twice.

A *changed* file (a new version of an ingested one) is read like any file and checked
against what it loaded before by the DuckDB path's rules (:mod:`jobs.spark.revise`): its new
rows loaded, changed rows quarantined, the ledger saying ``changed``, in the same commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from jobs import logs
from jobs.config import Config
from jobs.landing import SET_ASIDE, FileResult, IngestResult, Landing, find, look_up
from jobs.spark.file_rows import LABEL_FIELDS, file_rows, spark_schema, transaction_fields
from jobs.spark.revise import (
    SAME,
    Prior,
    changed_file,
    gone,
    new_quarantine,
    priors,
    same_labels,
    unreadable_change,
)
from jobs.spark.tables import Commit, columns, ddl, duckdb_views, has_rows, recover, table_path
from jobs.warehouse_access import writer_lock

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logs.get("ingest")


@dataclass(frozen=True)
class _Feed:
    """The new files of one feed and their checked rows (a cached Spark frame)."""

    feed: str
    files: list[Landing]
    rows: Any  # DataFrame


def read_table(spark: SparkSession, cfg: Config, table: str) -> DataFrame:
    """A Parquet table as a Spark frame (no rows when nothing was written yet)."""
    if not has_rows(cfg, table):
        return spark.createDataFrame([], ddl(cfg.settings.source, table))
    return spark.read.schema(ddl(cfg.settings.source, table)).parquet(
        str(table_path(cfg.spark_warehouse, table))
    )


def _checked(spark: SparkSession, cfg: Config, feed: str, files: list[Landing]) -> DataFrame:
    """Every row of the files, typed and checked by the DuckDB rules, one task per file."""
    paths = spark.createDataFrame(
        [(i, str(f.path), f.name if f.changed else None) for i, f in enumerate(files)],
        "file int, path string, prior string",
    ).repartition(max(1, len(files)), "file")
    fields = transaction_fields(cfg.settings.source) if feed == "transactions" else LABEL_FIELDS
    fn = file_rows(cfg.settings.model_dump_json(), str(cfg.path), feed)
    return paths.mapInArrow(fn, spark_schema(fields))  # type: ignore[arg-type]


def _transactions(spark: SparkSession, cfg: Config, rows: DataFrame) -> DataFrame:
    """The rows with their final reason: the per-row verdict, then duplicates."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    good = F.col("reason").isNull() & F.col("set_aside").isNull()
    known = read_table(spark, cfg, "transactions").select("transaction_id").distinct()
    known = known.withColumn("__known", F.lit(True))
    by_id = Window.partitionBy("transaction_id")
    in_file = Window.partitionBy("__file", "transaction_id")
    firsts = (
        rows.filter(good)
        .select("__file", "__row", "transaction_id")
        .withColumn("__first_row", F.min("__row").over(in_file))
        .withColumn("__first_file", F.min("__file").over(by_id))
        .join(known, "transaction_id", "left")
        .select(
            "__file",
            "__row",
            F.when(F.col("__row") != F.col("__first_row"), F.lit("duplicate_in_file"))
            .when(
                F.col("__known").isNotNull() | (F.col("__file") > F.col("__first_file")),
                F.lit("duplicate_in_warehouse"),
            )
            .alias("__dup"),
        )
    )
    dup = F.col("__dup")
    return (
        rows.join(firsts, ["__file", "__row"], "left")
        .withColumn(
            "field", F.when(dup.isNotNull(), F.lit("transaction_id")).otherwise(F.col("field"))
        )
        .withColumn("reason", F.coalesce("reason", dup))
        .drop("__dup")
    )


def _labels(spark: SparkSession, known: DataFrame, rows: DataFrame) -> DataFrame:
    """Label rows with their final reason: a verdict already known (in the warehouse, inline
    in this ingest, earlier in the file or in an earlier file) is ``duplicate_label``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    good = F.col("reason").isNull() & F.col("set_aside").isNull()
    order = Window.partitionBy("transaction_id", "is_fraud").orderBy("__file", "__row")
    seen = known.select("transaction_id", "is_fraud").distinct().withColumn("__seen", F.lit(1))
    dups = (
        rows.filter(good)
        .select("__file", "__row", "transaction_id", "is_fraud")
        .withColumn("__n", F.row_number().over(order))
        .join(seen, ["transaction_id", "is_fraud"], "left")
        .filter((F.col("__n") > 1) | F.col("__seen").isNotNull())
        .select("__file", "__row", F.lit("duplicate_label").alias("__dup"))
    )
    dup = F.col("__dup")
    return (
        rows.join(dups, ["__file", "__row"], "left")
        .withColumn(
            "field", F.when(dup.isNotNull(), F.lit("transaction_id")).otherwise(F.col("field"))
        )
        .withColumn("reason", F.coalesce("reason", dup))
        .drop("__dup")
    )


def _source(files: list[Landing]) -> Any:
    from pyspark.sql import functions as F

    names = F.array(*[F.lit(f.name) for f in files])
    return F.element_at(names, F.col("__file") + 1)


def _stage_feed(
    spark: SparkSession, cfg: Config, commit: Commit, f: _Feed, stamp: Any
) -> tuple[dict[int, dict[str, int]], dict[str, int], Any]:
    """Write the feed's good rows and quarantine into the commit; return the per-file counts,
    the quarantined rows by reason, and the inline labels loaded (id, verdict) or None."""
    from pyspark.sql import functions as F

    source = cfg.settings.source
    rows, src = f.rows.filter(F.col("set_aside").isNull()), _source(f.files)
    changed = [i for i, landing in enumerate(f.files) if landing.changed]
    ok = F.col("reason").isNull()
    quarantined = rows.filter(
        F.col("reason").isNotNull() & ~F.col("reason").startswith("_")
    ).select(
        "__file",
        src.alias("source_file"),
        F.col("__row").alias("source_row"),
        F.lit(f.feed).alias("feed"),
        "reason",
        "field",
        "detail",
        "raw",
        F.lit(stamp).cast("timestamp_ntz").alias("quarantined_at"),
    )
    quarantined = new_quarantine(
        quarantined, read_table(spark, cfg, "quarantine"), [f.files[i].name for i in changed]
    ).persist()
    quarantined.drop("__file").write.mode("append").partitionBy("feed").parquet(
        str(commit.staging("quarantine"))
    )
    label_cols = [n for n, _ in columns(source, "labels")]
    inline: Any = None
    extra: dict[int, int] = {}
    if f.feed == "transactions":
        tx_cols = [n for n, _ in columns(source, "transactions")]
        good = rows.filter(ok).select(
            "*",
            src.alias("source_file"),
            F.col("__row").alias("source_row"),
            F.lit(stamp).cast("timestamp_ntz").alias("ingested_at"),
            F.to_date("event_time").alias("event_date"),
        )
        good.select(*tx_cols).write.partitionBy("event_date").parquet(
            str(commit.staging("transactions"))
        )
        # inline labels: the new rows', and a changed file's label on a row that did not change
        seen = read_table(spark, cfg, "labels").select(
            "transaction_id", F.col("is_fraud").alias("label")
        )
        relabelled = (
            rows.filter((F.col("reason") == SAME) & F.col("label").isNotNull())
            .join(seen.distinct(), ["transaction_id", "label"], "left_anti")
            .select(
                "*",
                src.alias("source_file"),
                F.col("__row").alias("source_row"),
                F.lit(stamp).cast("timestamp_ntz").alias("ingested_at"),
            )
        )
        delay = source.label_delay_days
        inline = good.unionByName(relabelled, allowMissingColumns=True).filter(
            F.col("label").isNotNull()
        )
        labels = inline.select(
            "__file",
            "transaction_id",
            F.col("label").alias("is_fraud"),
            (F.col("event_time") + F.expr(f"INTERVAL {int(delay)} DAYS")).alias("reported_at"),
            "source_file",
            "source_row",
            "ingested_at",
            F.lit("chargeback").alias("source"),
        ).withColumn("reported_date", F.to_date("reported_at"))
        labels.select(*label_cols).write.mode("append").partitionBy("reported_date").parquet(
            str(commit.staging("labels"))
        )
        extra = {int(r[0]): int(r[1]) for r in labels.groupBy("__file").count().collect()}
        inline = labels.select("transaction_id", "is_fraud") if source.columns.label else None
    else:
        good = rows.filter(ok).select(
            "transaction_id",
            "is_fraud",
            "reported_at",
            src.alias("source_file"),
            F.col("__row").alias("source_row"),
            F.lit(stamp).cast("timestamp_ntz").alias("ingested_at"),
            F.lit("chargeback").alias("source"),
            F.to_date("reported_at").alias("reported_date"),
        )
        good.select(*label_cols).write.mode("append").partitionBy("reported_date").parquet(
            str(commit.staging("labels"))
        )
    counts: dict[int, dict[str, int]] = {}
    for r in (
        rows.groupBy("__file")
        .agg(
            F.count("*").alias("read"),
            F.count(F.when(ok, 1)).alias("loaded"),
            F.count(F.when(F.col("reason") == SAME, 1)).alias("same"),
            F.count(F.when(F.col("reason") == "changed_after_ingest", 1)).alias("changed"),
        )
        .collect()
    ):
        counts[int(r["__file"])] = {k: int(r[k]) for k in ("read", "loaded", "same", "changed")}
    reasons: dict[str, int] = {}
    for r in quarantined.groupBy("__file", "reason").count().collect():
        c = counts.setdefault(int(r[0]), {})
        c["quarantined"] = c.get("quarantined", 0) + int(r[2])
        reasons[str(r[1])] = reasons.get(str(r[1]), 0) + int(r[2])
    quarantined.unpersist()
    if changed and f.feed == "transactions":
        prior_rows = read_table(spark, cfg, "transactions").select("source_file", "transaction_id")
        names = [f.files[i].name for i in changed]
        by_name = gone(prior_rows.filter(F.col("source_file").isin(names)), rows, src, changed)
        for i in changed:
            counts.setdefault(i, {})["gone"] = by_name.get(f.files[i].name, 0)
    for i, n in extra.items():
        counts.setdefault(i, {})["labels"] = n
    return counts, reasons, inline


def _ledger_rows(
    f: _Feed,
    counts: dict[int, dict[str, int]],
    aside: dict[int, str],
    prior: dict[int, Prior],
    stamp: Any,
) -> tuple[list[dict[str, Any]], list[FileResult]]:
    rows, results = [], []
    for i, landing in enumerate(f.files):
        c = {"read": 0, "loaded": 0, "same": 0, "changed": 0, "quarantined": 0, "labels": 0}
        c.update(counts.get(i, {}))
        note = aside.get(i)
        if i in prior:
            row, res = (
                unreadable_change(landing, f.feed, prior[i], note, stamp)
                if note is not None
                else changed_file(landing, f.feed, prior[i], {"gone": 0, **c}, stamp)
            )
            rows.append(row)
            results.append(res)
            continue
        read, loaded = c["read"], c["loaded"]
        rows.append(
            {
                "path": landing.name,
                "feed": f.feed,
                "size_bytes": landing.size,
                "sha256": landing.digest,
                "rows_read": read,
                "rows_loaded": loaded,
                "rows_quarantined": read - loaded,
                "ingested_at": stamp,
                "status": SET_ASIDE if note is not None else "ingested",
                "note": note,
                "previous_sha256": landing.prior.sha256 if landing.prior else None,
            }
        )
        if note is not None:
            results.append(FileResult(landing.name, f.feed, SET_ASIDE, note=note))
        else:
            labels = loaded if f.feed == "labels" else c["labels"]
            results.append(
                FileResult(landing.name, f.feed, "ingested", read, loaded, read - loaded, labels)
            )
    return rows, results


def _ledger(cfg: Config) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    duckdb_views(con, cfg)
    return con


def _look_up(
    cfg: Config, con: duckdb.DuckDBPyConnection, feed: str, result: IngestResult
) -> list[Landing]:
    found = find(cfg, feed)
    result.waiting += [str(p) for p in found.waiting]
    todo = []
    for path in found.ready:
        got = look_up(con, cfg.root, path, feed)
        if isinstance(got, FileResult):
            result.files.append(got)
        else:
            todo.append(got)
    return todo


def _stamp(con: duckdb.DuckDBPyConnection) -> Any:
    """Now, but later than every row ingested before (scoring finds new rows by it)."""
    from jobs.runs import utcnow

    last = con.execute("SELECT max(ingested_at) FROM ingested_files").fetchall()[0][0]
    now = utcnow()
    return now if last is None or now > last else last + timedelta(microseconds=1)


def spark_ingest(spark: SparkSession, cfg: Config) -> IngestResult:
    """Ingest every new transactions file, then every labels file, in one commit."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    result = IngestResult()
    with writer_lock(cfg.spark_warehouse / "tables"):
        for line in recover(cfg.spark_warehouse):
            logs.event(log, line, "warning")
        con = _ledger(cfg)
        stamp = _stamp(con)
        feeds, prior = [], {}
        for feed in ("transactions", "labels"):
            files = _look_up(cfg, con, feed, result)
            if files:
                feeds.append(_Feed(feed, files, _checked(spark, cfg, feed, files)))
                prior[feed] = priors(con, feed, files)
        con.close()
        if not feeds:
            return result
        commit = Commit.begin(cfg.spark_warehouse)
        try:
            inline: Any = None
            cached: list[Any] = []
            for f in feeds:
                if f.feed == "transactions":
                    rows = _transactions(spark, cfg, f.rows)
                else:
                    known = read_table(spark, cfg, "labels")
                    if inline is not None:
                        known = known.unionByName(inline, allowMissingColumns=True)
                    rows = _labels(spark, known, f.rows)
                    if prior[f.feed]:
                        mine = read_table(spark, cfg, "labels")
                        rows = same_labels(rows, mine, _source(f.files), list(prior[f.feed]))
                rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
                f = _Feed(f.feed, f.files, rows)
                aside = {
                    int(r["__file"]): str(r["set_aside"])
                    for r in rows.filter(F.col("set_aside").isNotNull()).collect()
                }
                counts, reasons, labelled = _stage_feed(spark, cfg, commit, f, stamp)
                if labelled is not None:
                    inline = labelled
                for reason, n in reasons.items():
                    got = result.quarantined_by_reason.get(reason, 0)
                    result.quarantined_by_reason[reason] = got + n
                ledger, done = _ledger_rows(f, counts, aside, prior[f.feed], stamp)
                folder = commit.staging("ingested_files") / f"feed={f.feed}"
                folder.mkdir(parents=True, exist_ok=True)
                table = pa.Table.from_pylist(ledger).drop(["feed"])
                pq.write_table(table, folder / "ledger.parquet")
                result.files.extend(done)
                cached.append(rows)
            commit.commit()
        except BaseException:
            commit.abandon()
            raise
        finally:
            for rows in cached:  # the labels feed reads the transactions feed's inline labels
                rows.unpersist()
    for res in result.files:
        logs.event(log, f"file {res.status}", **res.to_dict())
    return result
