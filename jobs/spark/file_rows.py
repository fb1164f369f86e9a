"""One landing file's rows, typed and checked, in a Spark task: the DuckDB path's own rules.

Spark hands each task a few landing files (``mapInArrow`` over a frame of file paths, one
partition per file); the task reads each with the very reader, mapping, typing and checks
that the DuckDB ingest uses (:func:`jobs.ingest_read.stage`,
:func:`jobs.ingest_checks.typed_transactions`, :func:`jobs.ingest_checks.check_labels`), in
an in-memory DuckDB of its own, and yields its rows as Arrow batches: every row with
``__file`` (the file's index), ``__row`` (1-based, as the DuckDB path numbers them), the
typed canonical columns, for a bad row its ``reason``, ``field`` and ``detail``, and the
row's ``raw`` values as JSON (every row's: a good row may turn out a duplicate across files,
which only Spark can tell; the good rows' are dropped before anything is written). A file that cannot be read is one row with ``set_aside`` saying why.

Why not Spark's own readers: their CSV and JSON parsers neither number rows nor say which
row was ragged or in the wrong encoding, and their casts differ from DuckDB's at the edges
(text timestamps with offsets, booleans, blanks): the same rules would be a second copy that
drifts. The checks that span files (duplicates across files and against the warehouse) are
Spark's (:mod:`jobs.spark.ingest`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa

from jobs.config import Config, Settings, Source
from jobs.errors import InputFileError
from jobs.ingest_checks import check_labels, typed_transactions
from jobs.ingest_read import stage
from jobs.ingest_sql import lit, q, split_problem

PROBLEM_FIELDS = [
    ("reason", pa.string()),
    ("field", pa.string()),
    ("detail", pa.string()),
    ("raw", pa.string()),
    ("set_aside", pa.string()),
]


def transaction_fields(s: Source) -> list[tuple[str, pa.DataType]]:
    fields = [
        ("__file", pa.int32()),
        ("__row", pa.int64()),
        ("transaction_id", pa.string()),
        ("event_time", pa.timestamp("us")),
        ("card_id", pa.string()),
        ("merchant_id", pa.string()),
        ("amount", pa.float64()),
    ]
    fields += [(n, pa.float64()) for n in s.numeric_columns]
    fields += [(n, pa.string()) for n in s.categorical_columns]
    fields.append(("label", pa.bool_()))
    return fields + PROBLEM_FIELDS


LABEL_FIELDS = [
    ("__file", pa.int32()),
    ("__row", pa.int64()),
    ("transaction_id", pa.string()),
    ("is_fraud", pa.bool_()),
    ("reported_at", pa.timestamp("us")),
    *PROBLEM_FIELDS,
]


def spark_schema(fields: list[tuple[str, pa.DataType]]) -> str:
    """The Spark DDL of Arrow fields (timestamps without a zone are ``timestamp_ntz``)."""
    names = {
        pa.int32(): "int",
        pa.int64(): "bigint",
        pa.string(): "string",
        pa.float64(): "double",
        pa.bool_(): "boolean",
        pa.timestamp("us"): "timestamp_ntz",
    }
    return ", ".join(f"`{n}` {names[t]}" for n, t in fields)


def _raw(cols: list[str]) -> str:
    """The row's raw values as JSON, as :func:`jobs.ingest_sql.quarantine_insert` keeps them
    (that function writes an INSERT; this is its expression, for one SELECT)."""
    pairs = ", ".join(f"{q(c)} := r.{q(c)}" for c in cols)
    return f"coalesce(r.__raw, to_json(struct_pack({pairs})))" if cols else "r.__raw"


def _transactions_sql(source: Source, con: duckdb.DuckDBPyConnection, path: Path, i: int) -> str:
    types = stage(con, path, source, "fw_raw")
    typed, problem = typed_transactions(source, path, types, "fw_raw")
    s = source
    extras = "".join(f", c.{q(n)}" for n in [*s.numeric_columns, *s.categorical_columns])
    label = "c.label" if s.columns.label else "NULL::BOOLEAN AS label"
    return f"""
        SELECT {i}::INTEGER AS __file, c.__row, c.transaction_id, c.event_time, c.card_id,
               c.merchant_id, c.amount{extras}, {label}, {split_problem("c.problem")},
               {_raw(list(types))} AS raw,
               NULL::VARCHAR AS set_aside
        FROM (SELECT *, {problem} AS problem FROM ({typed})) c JOIN fw_raw r USING (__row)
    """


def _labels_sql(source: Source, con: duckdb.DuckDBPyConnection, path: Path, i: int) -> str:
    types = stage(con, path, source, "fw_raw")
    # duplicates against the warehouse are Spark's to find: here, none is known
    con.execute("CREATE TABLE labels (transaction_id VARCHAR, is_fraud BOOLEAN)")
    check_labels(con, source, path, types)
    return f"""
        SELECT {i}::INTEGER AS __file, c.__row, c.transaction_id, c.is_fraud, c.reported_at,
               c.reason, c.field, c.detail,
               {_raw(list(types))} AS raw,
               NULL::VARCHAR AS set_aside
        FROM fw_checked c JOIN fw_raw r USING (__row)
    """


def _revised_sql(cfg: Config, con: duckdb.DuckDBPyConnection, path: Path, i: int, name: str) -> str:
    """A new version of an ingested transactions file: its rows checked against what the
    file loaded before (read from the Parquet table) by the DuckDB path's own rules
    (:func:`jobs.ingest_revise._compare`): ``_same``, ``changed_after_ingest`` (the detail
    says the stored value), or as any row. Duplicates of other files' rows are Spark's."""
    from jobs.ingest_checks import check_transactions
    from jobs.ingest_revise import _compare
    from jobs.spark.tables import parquet_scan

    source = cfg.settings.source
    types = stage(con, path, source, "fw_raw")
    typed, problem = typed_transactions(source, path, types, "fw_raw")
    con.execute(
        f"CREATE TEMP VIEW transactions AS SELECT * FROM {parquet_scan(cfg, 'transactions')} "
        f"WHERE source_file = {lit(name)}"
    )
    check_transactions(con, typed, problem)
    _compare(con, source, name, replace=False)
    s = source
    extras = "".join(f", c.{q(n)}" for n in [*s.numeric_columns, *s.categorical_columns])
    label = "c.label" if s.columns.label else "NULL::BOOLEAN AS label"
    # the DuckDB path's tip names --reingest, which the Spark engine does not have
    detail = "regexp_replace(c.detail, '; `fraudwatch ingest --reingest .*$', '')"
    return f"""
        SELECT {i}::INTEGER AS __file, c.__row, c.transaction_id, c.event_time, c.card_id,
               c.merchant_id, c.amount{extras}, {label}, c.reason, c.field, {detail} AS detail,
               {_raw(list(types))} AS raw, NULL::VARCHAR AS set_aside
        FROM fw_checked c JOIN fw_raw r USING (__row)
    """


def _one_file(
    cfg: Config, feed: str, path: Path, i: int, prior: str | None, schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    source = cfg.settings.source
    con = duckdb.connect()
    try:
        con.execute("SET threads = 1")  # one task, one core: Spark runs the others
        con.execute(f"SET memory_limit = '{cfg.settings.warehouse.ingest_limit()}'")
        try:
            if prior is not None and feed == "transactions":
                sql = _revised_sql(cfg, con, path, i, prior)
            else:
                build = _transactions_sql if feed == "transactions" else _labels_sql
                sql = build(source, con, path, i)
            reader = con.sql(sql).to_arrow_reader(65_536)
            for batch in reader:
                yield pa.RecordBatch.from_arrays(
                    [batch.column(f.name).cast(f.type) for f in schema], schema=schema
                )
        except (InputFileError, duckdb.Error) as exc:
            why = (
                str(exc).removeprefix(f"{exc.path}: ")
                if isinstance(exc, InputFileError)
                else f"cannot be read: {str(exc).splitlines()[0]}"
            )
            row: dict[str, list[object]] = {f.name: [None] for f in schema}
            row.update(__file=[i], __row=[0], set_aside=[why])
            yield pa.RecordBatch.from_pydict(row, schema=schema)
    finally:
        con.close()


def file_rows(
    settings_json: str, config_path: str, feed: str
) -> object:  # the mapInArrow function: Iterator[pa.RecordBatch] -> Iterator[pa.RecordBatch]
    """The function each Spark task runs over its batches of ``(file, path, prior)`` rows
    (``prior``: the recorded name of a changed file, else None). The config travels as JSON
    and is validated again where it runs."""

    def rows(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        cfg = Config(Settings.model_validate_json(settings_json), Path(config_path))
        fields = transaction_fields(cfg.settings.source) if feed == "transactions" else LABEL_FIELDS
        schema = pa.schema(fields)
        for batch in batches:
            for i, path, prior in zip(
                batch.column("file").to_pylist(),
                batch.column("path").to_pylist(),
                batch.column("prior").to_pylist(),
                strict=True,
            ):
                yield from _one_file(cfg, feed, Path(path), int(i), prior, schema)

    return rows
