"""Ingest: new landing files into the warehouse, whole or not at all, bad rows quarantined.

For each file matched by ``[source] transactions`` (and ``labels``), in path
order:

1. the ledger ``ingested_files`` is checked by path and sha256: an ingested file
   is skipped; one whose content changed since is reported, never re-ingested;
2. the file is read by DuckDB (Parquet, CSV or JSON lines by extension),
   source columns are mapped to the canonical names of ``[source.columns]``; a
   file that cannot be read or lacks a mapped column fails with its path and
   the column, and nothing of it is written;
3. values are coerced (TRY_CAST) and validated in SQL; each bad row goes to
   ``quarantine`` with the file, its 1-based row number, the raw values as JSON,
   a reason code and the field;
4. good rows, quarantined rows and the ledger row are written in ONE
   transaction.

Reason codes: ``missing_field``, ``bad_timestamp``, ``bad_amount``,
``non_finite_amount``, ``negative_amount``, ``future_timestamp``,
``bad_value`` (an extra numeric column), ``bad_label``, ``duplicate_in_file``,
``duplicate_in_warehouse``; for the labels feed ``missing_field``,
``bad_timestamp``, ``bad_label``, ``duplicate_label``.

Rows never become Python objects: reading, mapping, validation, de-duplication
and the insert are DuckDB SQL over the file.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb

from jobs import logs
from jobs.config import Config
from jobs.errors import InputFileError
from jobs.ingest_sql import boolean, num, numbered_rows, present, q, quarantine_insert, text, ts
from jobs.runs import utcnow

log = logs.get("ingest")

REQUIRED = ("transaction_id", "event_time", "card_id", "merchant_id", "amount")


@dataclass(frozen=True)
class FileResult:
    path: str
    feed: str
    status: str  # ingested | skipped | changed
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0


@dataclass
class IngestResult:
    files: list[FileResult] = field(default_factory=list)
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def files_ingested(self) -> int:
        return sum(1 for f in self.files if f.status == "ingested")

    @property
    def files_skipped(self) -> int:
        return sum(1 for f in self.files if f.status == "skipped")

    @property
    def changed_files(self) -> list[str]:
        return [f.path for f in self.files if f.status == "changed"]

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files if f.feed == "transactions")

    @property
    def labels_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files if f.feed == "labels")

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "files_ingested": self.files_ingested,
            "files_skipped": self.files_skipped,
            "changed_files": self.changed_files,
            "rows_loaded": self.rows_loaded,
            "labels_loaded": self.labels_loaded,
            "rows_quarantined": self.rows_quarantined,
            "quarantined_by_reason": dict(sorted(self.quarantined_by_reason.items())),
        }


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _stage_raw(con: duckdb.DuckDBPyConnection, path: Path, delimiter: str) -> dict[str, str]:
    """Define temp view ``fw_raw`` over the file; return its columns' types (file name errors)."""
    con.execute("DROP VIEW IF EXISTS temp.fw_raw")
    try:
        con.execute(f"CREATE TEMP VIEW fw_raw AS SELECT * FROM {numbered_rows(path, delimiter)}")
        rows = con.execute("DESCRIBE SELECT * FROM fw_raw").fetchall()
    except duckdb.Error as exc:
        raise InputFileError(str(path), f"cannot be read: {str(exc).splitlines()[0]}") from None
    kinds = {str(r[0]): str(r[1]) for r in rows if r[0] != "__row"}
    if path.suffix.lower() == ".parquet":
        kinds = {k: ("VARCHAR!" if v == "VARCHAR" else v) for k, v in kinds.items()}
    return kinds


def _require(path: Path, have: list[str], mapping: dict[str, str]) -> None:
    for canonical, source in mapping.items():
        if source not in have:
            raise InputFileError(
                str(path),
                f"missing (mapped to {canonical!r} by the config; the file has: "
                f"{', '.join(have) or 'no columns'})",
                column=source,
            )


def _typed_transactions(cfg: Config, path: Path, types: dict[str, str]) -> tuple[str, str]:
    """The file's rows typed and mapped (a SELECT over ``fw_raw``), and the CASE that names
    a row's problem (NULL for a good row)."""
    s = cfg.settings.source
    m = s.columns
    mapping = {c: getattr(m, c) for c in REQUIRED}
    if m.label:
        mapping["label"] = m.label
    extras = {**s.numeric_columns, **s.categorical_columns}
    _require(path, list(types), {**mapping, **extras})
    horizon = utcnow() + timedelta(hours=s.future_tolerance_hours)
    typed = [
        f"{text(m.transaction_id, types)} AS transaction_id",
        f"{ts(m.event_time, types)} AS event_time",
        f"{text(m.card_id, types)} AS card_id",
        f"{text(m.merchant_id, types)} AS merchant_id",
        f"{num(m.amount, types)} AS amount",
    ]
    typed += [f"NOT ({present(getattr(m, c), types)}) AS __miss_{c}" for c in REQUIRED]
    checks = [f"WHEN __miss_{c} THEN 'missing_field|{c}|'" for c in REQUIRED]
    checks += [
        "WHEN event_time IS NULL THEN 'bad_timestamp|event_time|not a timestamp'",
        "WHEN amount IS NULL THEN 'bad_amount|amount|not a number'",
        "WHEN isnan(amount) OR isinf(amount) THEN 'non_finite_amount|amount|'",
        "WHEN amount < 0 THEN 'negative_amount|amount|'",
        f"WHEN event_time > TIMESTAMP '{horizon:%Y-%m-%d %H:%M:%S}' "
        f"THEN 'future_timestamp|event_time|later than now + {s.future_tolerance_hours:g} h'",
    ]
    for name, src in s.numeric_columns.items():
        typed.append(f"{num(src, types)} AS {q(name)}")
        typed.append(f"{present(src, types)} AS {q('__has_' + name)}")
        checks.append(
            f"WHEN {q('__has_' + name)} AND {q(name)} IS NULL THEN 'bad_value|{name}|not a number'"
        )
    for name, src in s.categorical_columns.items():
        typed.append(f"{text(src, types)} AS {q(name)}")
    if m.label:
        typed.append(f"{boolean(m.label)} AS label")
        typed.append(f"{present(m.label, types)} AS __has_label")
        checks.append("WHEN __has_label AND label IS NULL THEN 'bad_label|label|not a boolean'")
    return f"SELECT __row, {', '.join(typed)} FROM fw_raw", f"CASE {' '.join(checks)} END"


def _clean_rows(con: duckdb.DuckDBPyConnection, typed: str, problem: str) -> int | None:
    """The file's row count when every row is good (the common case), else None.

    Two aggregate passes over the file and no temporary table: no row has a problem,
    no id repeats in the file, and none is already in the warehouse (the range filter
    lets DuckDB skip row groups whose ids are all outside the file's).
    """
    n, bad, distinct, lo, hi = con.execute(
        f"SELECT count(*), count({problem}), count(DISTINCT transaction_id), "
        f"min(transaction_id), max(transaction_id) FROM ({typed})"
    ).fetchall()[0]
    if bad or distinct != n:
        return None
    if n:
        seen = con.execute(
            "SELECT count(*) FROM transactions WHERE transaction_id BETWEEN ? AND ? "
            f"AND transaction_id IN (SELECT transaction_id FROM ({typed}))",
            [lo, hi],
        ).fetchall()[0][0]
        if seen:
            return None
    return int(n)


def _check_transactions(con: duckdb.DuckDBPyConnection, typed: str, problem: str) -> None:
    """Materialise ``fw_checked``: every row with its reason, field and detail (NULL if good)."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE fw_checked AS
        WITH typed AS ({typed}),
        checked AS (SELECT *, {problem} AS problem FROM typed),
        firsts AS (
            SELECT transaction_id, min(__row) AS first_row FROM checked
            WHERE problem IS NULL GROUP BY transaction_id
        ),
        bounds AS (SELECT min(transaction_id) AS lo, max(transaction_id) AS hi FROM firsts),
        seen AS (
            -- ids already in the warehouse: the hash table is built on this file's ids, and the
            -- range filter lets DuckDB skip row groups whose ids are all outside it (zonemaps)
            SELECT DISTINCT t.transaction_id FROM transactions t SEMI JOIN firsts USING (transaction_id)
            WHERE t.transaction_id BETWEEN (SELECT lo FROM bounds) AND (SELECT hi FROM bounds)
        ),
        known AS (
            SELECT c.*, CASE
                WHEN c.problem IS NOT NULL THEN c.problem
                WHEN f.first_row <> c.__row THEN 'duplicate_in_file|transaction_id|'
                WHEN s.transaction_id IS NOT NULL THEN 'duplicate_in_warehouse|transaction_id|'
            END AS why
            FROM checked c
            LEFT JOIN firsts f ON f.transaction_id = c.transaction_id
            LEFT JOIN seen s ON s.transaction_id = c.transaction_id
        )
        SELECT * EXCLUDE (why), nullif(split_part(why, '|', 1), '') AS reason,
               nullif(split_part(why, '|', 2), '') AS field,
               nullif(split_part(why, '|', 3), '') AS detail
        FROM known
        """
    )


def _load_transactions(con: duckdb.DuckDBPyConnection, cfg: Config, path: Path, good: str) -> None:
    """Insert the good rows (``good``: a FROM item yielding only them) and inline labels."""
    s = cfg.settings.source
    extras = [*s.numeric_columns, *s.categorical_columns]
    cols = ", ".join([*REQUIRED, *(q(e) for e in extras)])
    now = utcnow()
    con.execute(
        f"INSERT INTO transactions ({cols}, source_file, source_row, ingested_at) "
        f"SELECT {cols}, ?, __row, ? FROM {good}",
        [str(path), now],
    )
    if s.columns.label:
        con.execute(
            "INSERT INTO labels (transaction_id, is_fraud, reported_at, source_file, source_row, "
            f"ingested_at) SELECT transaction_id, label, event_time + to_days(?), ?, __row, ? "
            f"FROM {good} WHERE label IS NOT NULL",
            [s.label_delay_days, str(path), now],
        )


def _check_labels(
    con: duckdb.DuckDBPyConnection, cfg: Config, path: Path, types: dict[str, str]
) -> None:
    lc = cfg.settings.source.label_columns
    mapping = {k: lc.get(k, k) for k in ("transaction_id", "is_fraud", "reported_at")}  # type: ignore[call-overload]
    _require(path, list(types), mapping)
    checks = [f"WHEN __miss_{c} THEN 'missing_field|{c}|'" for c in mapping]
    checks += [
        "WHEN reported_at IS NULL THEN 'bad_timestamp|reported_at|not a timestamp'",
        "WHEN is_fraud IS NULL THEN 'bad_label|is_fraud|not a boolean'",
    ]
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE fw_checked AS
        WITH typed AS (
            SELECT __row, {text(mapping["transaction_id"], types)} AS transaction_id,
                   {boolean(mapping["is_fraud"])} AS is_fraud,
                   {ts(mapping["reported_at"], types)} AS reported_at,
                   {", ".join(f"NOT ({present(src, types)}) AS __miss_{c}" for c, src in mapping.items())}
            FROM fw_raw),
        checked AS (SELECT *, CASE {" ".join(checks)} END AS problem FROM typed),
        dedup AS (
            SELECT c.*, CASE WHEN c.problem IS NULL AND (row_number() OVER
                (PARTITION BY c.transaction_id, c.is_fraud, c.problem IS NULL ORDER BY c.__row) > 1
                OR l.transaction_id IS NOT NULL)
                THEN 'duplicate_label|transaction_id|' END AS dup
            FROM checked c LEFT JOIN (SELECT DISTINCT transaction_id, is_fraud FROM labels) l
              ON l.transaction_id = c.transaction_id AND l.is_fraud = c.is_fraud
        )
        SELECT *, nullif(split_part(coalesce(problem, dup), '|', 1), '') AS reason,
               nullif(split_part(coalesce(problem, dup), '|', 2), '') AS field,
               nullif(split_part(coalesce(problem, dup), '|', 3), '') AS detail
        FROM dedup
        """
    )


def _load_labels(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    con.execute(
        "INSERT INTO labels (transaction_id, is_fraud, reported_at, source_file, source_row, "
        "ingested_at) SELECT transaction_id, is_fraud, reported_at, ?, __row, ? "
        "FROM fw_checked WHERE reason IS NULL",
        [str(path), utcnow()],
    )


def recorded_path(cfg: Config, path: Path) -> str:
    """How a landing file is recorded: relative to the config's folder when inside it, so a
    deployment can move (or be copied) without its files looking new."""
    try:
        return str(path.resolve().relative_to(cfg.root))
    except ValueError:
        return str(path.resolve())


def ingest_file(con: duckdb.DuckDBPyConnection, cfg: Config, path: Path, feed: str) -> FileResult:
    """Ingest one file in one transaction; return what happened (ingested, skipped, changed)."""
    name = recorded_path(cfg, path)
    size = path.stat().st_size
    digest = sha256_of(path)
    known = con.execute(
        "SELECT sha256 FROM ingested_files WHERE path = ? AND feed = ?", [name, feed]
    ).fetchall()
    if known:
        if known[0][0] == digest:
            return FileResult(name, feed, "skipped")
        logs.event(log, "landing file changed after ingestion; not ingested again", 30, path=name)
        return FileResult(name, feed, "changed")
    con.execute("BEGIN TRANSACTION")
    try:
        types = _stage_raw(con, path, cfg.settings.source.csv_delimiter)
        cols = list(types)
        clean = None
        if feed == "transactions":
            typed, problem = _typed_transactions(cfg, path, types)
            clean = _clean_rows(con, typed, problem)
            if clean is not None:  # nothing to quarantine: straight from the file
                _load_transactions(con, cfg, Path(name), f"({typed}) good")
            else:
                _check_transactions(con, typed, problem)
                good = "(SELECT * FROM fw_checked WHERE reason IS NULL) good"
                _load_transactions(con, cfg, Path(name), good)
        else:
            _check_labels(con, cfg, path, types)
            _load_labels(con, Path(name))
        if clean is not None:
            read = loaded = clean
        else:
            read, loaded = (
                int(v)
                for v in con.execute(
                    "SELECT count(*), count(*) FILTER (WHERE reason IS NULL) FROM fw_checked"
                ).fetchall()[0]
            )
        if read > loaded:  # raw values are read back from the file for the bad rows only
            con.execute(quarantine_insert(Path(name), feed, cols), [utcnow()])
        con.execute(
            "INSERT INTO ingested_files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [name, feed, size, digest, read, loaded, read - loaded, utcnow()],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute("DROP VIEW IF EXISTS temp.fw_raw")
        con.execute("DROP TABLE IF EXISTS temp.fw_checked")
    result = FileResult(name, feed, "ingested", read, loaded, read - loaded)
    logs.event(log, "file ingested", **result.__dict__)
    return result


def landing_files(pattern: str | None) -> list[Path]:
    if not pattern:
        return []
    return sorted(Path(p) for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))


def ingest(cfg: Config, con: duckdb.DuckDBPyConnection) -> IngestResult:
    """Ingest every new transactions file, then every new labels file.

    A file that cannot be ingested at all stops the ingest with an
    :class:`InputFileError`; the files before it stay committed.
    """
    result = IngestResult()
    feeds = [("transactions", landing_files(cfg.transactions_glob))]
    feeds.append(("labels", landing_files(cfg.labels_glob)))
    total = sum(len(files) for _, files in feeds)
    with logs.progress("ingest", total) as bar:
        for feed, files in feeds:
            for path in files:
                try:
                    res = ingest_file(con, cfg, path, feed)
                except InputFileError as exc:
                    done = result.files_ingested
                    raise InputFileError(
                        exc.path,
                        str(exc).split(": ", 1)[1]
                        + f" — nothing of it was written; {done} file(s) before it were ingested",
                        column=None,
                    ) from None
                result.files.append(res)
                bar.update(1)
    if result.files_ingested:
        rows = con.execute(
            "SELECT reason, count(*) FROM quarantine WHERE source_file IN "
            "(SELECT unnest(?::VARCHAR[])) GROUP BY reason",
            [[f.path for f in result.files if f.status == "ingested"]],
        ).fetchall()
        result.quarantined_by_reason = {r: int(n) for r, n in rows}
    return result
