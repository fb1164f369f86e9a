"""Reading and checking one landing file, in SQL over a temp view of it (no writes).

:mod:`jobs.ingest` decides what is written; the SQL pieces come from
:mod:`jobs.ingest_sql`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb

from jobs.config import CANONICAL, Source
from jobs.errors import InputFileError
from jobs.ingest_sql import boolean, num, present, q, split_problem, text, ts
from jobs.runs import utcnow

REQUIRED = CANONICAL  # every canonical column must be mapped and present
TEXT_REQUIRED = ("transaction_id", "card_id", "merchant_id")


def require(path: Path, have: list[str], mapping: dict[str, str]) -> None:
    for canonical, source in mapping.items():
        if source not in have:
            raise InputFileError(
                str(path),
                f"missing (mapped to {canonical!r} by the config; the file has: "
                f"{', '.join(have) or 'no columns'})",
                column=source,
            )


def typed_transactions(
    s: Source, path: Path, types: dict[str, str], view: str = "fw_raw", keep: str = ""
) -> tuple[str, str]:
    """The file's rows typed and mapped (a SELECT over the temp view ``view``, with its
    column ``keep`` as it is, if given), and the CASE that names a row's problem (NULL
    for a good row)."""
    m = s.columns
    mapping = {c: getattr(m, c) for c in REQUIRED}
    if m.label:
        mapping["label"] = m.label
    extras = {**s.numeric_columns, **s.categorical_columns}
    require(path, list(types), {**mapping, **extras})
    horizon = utcnow() + timedelta(hours=s.future_tolerance_hours)
    typed = [
        f"{text(m.transaction_id, types)} AS transaction_id",
        f"{ts(m.event_time, types)} AS event_time",
        f"{text(m.card_id, types)} AS card_id",
        f"{text(m.merchant_id, types)} AS merchant_id",
        f"{num(m.amount, types)} AS amount",
    ]
    # a text column is missing when its typed value is NULL (blank once trimmed); a time or
    # an amount when the raw value is absent (present but unparseable is another problem)
    raw_checked = [c for c in REQUIRED if c not in TEXT_REQUIRED]
    typed += [f"NOT ({present(getattr(m, c), types)}) AS __miss_{c}" for c in raw_checked]
    typed.append("__malformed")
    checks = ["WHEN __malformed IS NOT NULL THEN __malformed"]
    checks += [
        f"WHEN {c + ' IS NULL' if c in TEXT_REQUIRED else '__miss_' + c} THEN 'missing_field|{c}|'"
        for c in REQUIRED
    ]
    checks += [
        "WHEN event_time IS NULL THEN 'bad_timestamp|event_time|not a timestamp'",
        "WHEN amount IS NULL THEN 'bad_amount|amount|not a number'",
        # not isnan(): DuckDB folds it to false from a Parquet column's statistics, which
        # leave NaN out of min/max (a NaN amount then loaded)
        "WHEN NOT isfinite(amount) THEN 'non_finite_amount|amount|'",
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
    if keep:
        typed.append(q(keep))
    return f"SELECT __row, {', '.join(typed)} FROM {q(view)}", f"CASE {' '.join(checks)} END"


def clean_group(con: duckdb.DuckDBPyConnection, rows: str, files: int) -> list[int] | None:
    """Each file's row count when every row of every file is good (the common case), else None.

    ``rows`` yields every row of the ``files`` files with ``__file`` (the file's
    index), ``transaction_id`` and ``__problem``. Two aggregate passes and no
    temporary table: no row has a problem, no id repeats within or across the files
    (told by distinct hashes: a collision only sends the files down the row-by-row
    path), and none is already in the warehouse (the range filter lets DuckDB skip
    row groups whose ids are all outside the files').
    """
    per_file = ", ".join(f"count(*) FILTER (WHERE __file = {i})" for i in range(files))
    *counts, bad, distinct, lo, hi = con.execute(
        f"SELECT {per_file}, count(__problem), count(DISTINCT hash(transaction_id)), "
        f"min(transaction_id), max(transaction_id) FROM ({rows})"
    ).fetchall()[0]
    if bad or distinct != sum(counts):
        return None
    in_range = "FROM transactions WHERE transaction_id BETWEEN ? AND ?"
    if distinct and con.execute(f"SELECT count(*) {in_range}", [lo, hi]).fetchall()[0][0]:
        # ids of the warehouse fall in the files' range (they do not when ids grow with
        # time): look each up
        seen = con.execute(
            f"SELECT count(*) {in_range} AND transaction_id IN "
            f"(SELECT transaction_id FROM ({rows}))",
            [lo, hi],
        ).fetchall()[0][0]
        if seen:
            return None
    return [int(n) for n in counts]


def check_transactions(con: duckdb.DuckDBPyConnection, typed: str, problem: str) -> None:
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
        SELECT * EXCLUDE (why), {split_problem("why")}
        FROM known
        """
    )


def check_labels(
    con: duckdb.DuckDBPyConnection, source: Source, path: Path, types: dict[str, str]
) -> None:
    lc = source.label_columns
    mapping = {k: lc.get(k, k) for k in ("transaction_id", "is_fraud", "reported_at")}  # type: ignore[call-overload]
    require(path, list(types), mapping)
    checks = ["WHEN __malformed IS NOT NULL THEN __malformed"]
    checks += [f"WHEN __miss_{c} THEN 'missing_field|{c}|'" for c in mapping]
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
                   {ts(mapping["reported_at"], types)} AS reported_at, __malformed,
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
        SELECT *, {split_problem("coalesce(problem, dup)")}
        FROM dedup
        """
    )
