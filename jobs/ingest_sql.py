"""The SQL that reads, types and checks landing files: built here, run by :mod:`jobs.ingest`.

Every config value that reaches SQL is quoted (:func:`q` for identifiers,
:func:`lit` for strings): a column named ``x"; DROP TABLE transactions; --`` is
a column name, never a statement.
"""

from __future__ import annotations

from pathlib import Path

from jobs.errors import InputFileError


def q(name: str) -> str:
    """Quote an identifier: a config value is data, never SQL."""
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def file_reader(path: Path, delimiter: str) -> str:
    p = lit(str(path))
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return f"read_parquet({p})"
    if suffix == ".csv":
        return f"read_csv({p}, all_varchar = true, header = true, delim = {lit(delimiter)})"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return f"read_json({p}, format = 'newline_delimited')"
    raise InputFileError(str(path), f"unsupported file type {suffix!r} (.parquet, .csv, .jsonl)")


def numbered_rows(path: Path, delimiter: str) -> str:
    """A subquery over the file with a 1-based ``__row`` number."""
    reader = file_reader(path, delimiter)
    if path.suffix.lower() == ".parquet":  # the reader numbers rows itself, in parallel
        reader = reader[:-1] + ", file_row_number = true)"
        return (
            f"(SELECT src.file_row_number + 1 AS __row, src.* EXCLUDE (file_row_number) "
            f"FROM {reader} src)"
        )
    return f"(SELECT row_number() OVER () AS __row, src.* FROM {reader} src)"


def parquet_rows(paths: list[Path], file_col: str) -> str:
    """A subquery over several Parquet files of one schema, read by ONE scan (both cores,
    full row groups), with each row's 1-based ``__row`` in its file and the file's path
    as given in ``file_col``."""
    files = "[" + ", ".join(lit(str(p)) for p in paths) + "]"
    return (
        f"(SELECT src.file_row_number + 1 AS __row, src.* EXCLUDE (file_row_number) "
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
    if types.get(col) == "VARCHAR!":  # typed (Parquet) strings are taken as they are
        return f"nullif({q(col)}, '')"
    if types.get(col) == "VARCHAR":
        return f"nullif(trim({q(col)}), '')"
    return f"nullif(trim(CAST({q(col)} AS VARCHAR)), '')"


def present(col: str, types: dict[str, str]) -> str:
    """SQL that is true when the raw value is there (not null, not blank)."""
    if types.get(col) == "VARCHAR!":
        return f"nullif({q(col)}, '') IS NOT NULL"
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


def quarantine_insert(path: Path, feed: str, cols: list[str], view: str = "fw_raw") -> str:
    """Bad rows with their raw values as JSON (built only for the quarantined rows)."""
    raw = "to_json(struct_pack(" + ", ".join(f"{q(c)} := r.{q(c)}" for c in cols) + "))"
    return (
        "INSERT INTO quarantine (source_file, source_row, feed, reason, field, detail, raw, "
        f"quarantined_at) SELECT {lit(str(path))}, c.__row, {lit(feed)}, c.reason, c.field, "
        f"c.detail, {raw}, ? FROM fw_checked c JOIN {q(view)} r USING (__row) "
        "WHERE c.reason IS NOT NULL"
    )
