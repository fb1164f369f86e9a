"""The SQL that reads, types and checks landing files: built here, run by :mod:`jobs.ingest`.

Every config value that reaches SQL is quoted (:func:`q` for identifiers,
:func:`lit` for strings): a column named ``x"; DROP TABLE transactions; --`` is
a column name, never a statement.
"""

from __future__ import annotations

from pathlib import Path


def q(name: str) -> str:
    """Quote an identifier: a config value is data, never SQL."""
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def parquet_rows(paths: list[Path], file_col: str) -> str:
    """A subquery over several Parquet files of one schema, read by ONE scan (both cores,
    full row groups), with each row's 1-based ``__row`` in its file and the file's path
    as given in ``file_col``."""
    files = "[" + ", ".join(lit(str(p)) for p in paths) + "]"
    return (
        f"(SELECT src.file_row_number + 1 AS __row, src.* EXCLUDE (file_row_number), "
        f"NULL::VARCHAR AS __malformed, NULL::VARCHAR AS __raw "
        f"FROM read_parquet({files}, file_row_number = true, filename = {lit(file_col)}) src)"
    )


_NUMERIC = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
)


def text(col: str, types: dict[str, str]) -> str:
    """As text, trimmed, the same from every format: ``' w1'`` and ``'w1'`` are one id, and a
    number is its digits (a JSON ``4111`` and ``"4111"`` arrive here as the same text)."""
    if types.get(col) == "VARCHAR":
        return f"nullif(trim({q(col)}), '')"
    return f"nullif(trim(CAST({q(col)} AS VARCHAR)), '')"


def present(col: str, types: dict[str, str]) -> str:
    """SQL that is true when the raw value is there (not null, not blank)."""
    if types.get(col) == "VARCHAR":
        return f"nullif(trim({q(col)}), '') IS NOT NULL"
    return f"{q(col)} IS NOT NULL"


def ts(col: str, types: dict[str, str]) -> str:
    """As a naive UTC timestamp; typed columns are cast directly, text is parsed."""
    kind = types.get(col, "")
    if kind.startswith("TIMESTAMP WITH TIME ZONE"):
        return f"timezone('UTC', {q(col)})"
    if kind.startswith("TIMESTAMP") or kind == "DATE":
        return f"CAST({q(col)} AS TIMESTAMP)"
    return f"timezone('UTC', TRY_CAST(CAST({q(col)} AS VARCHAR) AS TIMESTAMPTZ))"


def num(col: str, types: dict[str, str]) -> str:
    if types.get(col, "").startswith(_NUMERIC):
        return f"CAST({q(col)} AS DOUBLE)"
    return f"TRY_CAST(CAST({q(col)} AS VARCHAR) AS DOUBLE)"


def boolean(col: str) -> str:
    return (
        f"CASE lower(trim(CAST({q(col)} AS VARCHAR))) WHEN 'true' THEN true WHEN 'false' "
        f"THEN false WHEN '1' THEN true WHEN '0' THEN false WHEN 't' THEN true WHEN 'f' THEN false "
        f"WHEN 'yes' THEN true WHEN 'no' THEN false END"
    )


def split_problem(why: str) -> str:
    """The columns ``reason``, ``field`` and ``detail`` from a problem ``'reason|field|detail'``
    (the detail may hold ``|`` itself)."""
    return (
        f"nullif(split_part({why}, '|', 1), '') AS reason, "
        f"nullif(split_part({why}, '|', 2), '') AS field, "
        f"nullif(regexp_extract({why}, '^[^|]*\\|[^|]*\\|((?s).*)$', 1), '') AS detail"
    )


def quarantine_insert(
    path: Path, feed: str, cols: list[str], view: str = "fw_raw", *, skip_known: bool = False
) -> str:
    """Bad rows with their raw values as JSON (built only for the quarantined rows).

    Rows whose reason starts with ``_`` are not problems (``_same``: a row of a changed file
    that was ingested before, unchanged). With ``skip_known``, a row already quarantined
    from this file with the same row number, reason and raw values is not added again."""
    pairs = ", ".join(f"{q(c)} := r.{q(c)}" for c in cols)
    raw = f"coalesce(r.__raw, to_json(struct_pack({pairs})))" if cols else "r.__raw"
    name = lit(str(path))
    known = (
        f" AND NOT EXISTS (SELECT 1 FROM quarantine k WHERE k.source_file = {name} "
        f"AND k.feed = {lit(feed)} AND k.source_row = c.__row AND k.reason = c.reason "
        f"AND k.raw IS NOT DISTINCT FROM {raw})"
        if skip_known
        else ""
    )
    return (
        "INSERT INTO quarantine (source_file, source_row, feed, reason, field, detail, raw, "
        f"quarantined_at) SELECT {name}, c.__row, {lit(feed)}, c.reason, c.field, "
        f"c.detail, {raw}, ? FROM fw_checked c JOIN {q(view)} r USING (__row) "
        f"WHERE c.reason IS NOT NULL AND NOT starts_with(c.reason, '_'){known}"
    )
