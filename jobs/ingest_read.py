"""Reading one landing file into a temp view: every row numbered, a row the reader cannot
parse kept as a row (never a reason to refuse the whole file).

The view has ``__row`` (1-based: the data row of a CSV, the line of a JSON-lines file, the
row of a Parquet file), the file's columns, ``__malformed`` (``'malformed_row|field|why'``
when the reader could not parse the row, else NULL) and ``__raw`` (the row as JSON text
for the quarantine, when the columns cannot show it, else NULL).

- CSV: DuckDB's reader, every value as text, with ``store_rejects``: a row with too many
  or too few fields, or bytes that are not ``source.csv_encoding``, becomes a malformed
  row. Good rows keep their data-row number (counted past the rejected ones).
- JSON lines: read as lines of text, each parsed on its own, so a truncated line is one
  malformed row, and every value is taken as text whatever its JSON type: ``4111`` and
  ``"4111"`` are the same id, as they are in a CSV.
- Parquet: the file's own types (strings are trimmed later, like every format's).

A file that cannot be read at all (empty, not the format its name says) raises
:class:`~jobs.errors.InputFileError`; ingest sets it aside.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from jobs.config import Source
from jobs.errors import InputFileError
from jobs.ingest_sql import lit, q

JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
SUFFIXES = (".parquet", ".csv", *JSON_SUFFIXES)
# a byte pair that valid JSON text never holds raw (control characters must be escaped)
_NO_DELIM = "\x1f\x1e"

_META = ("__row", "__malformed", "__raw")
_WHY = {
    "TOO MANY COLUMNS": "more fields than the header",
    "MISSING COLUMNS": "fewer fields than the header",
    "INVALID ENCODING": "not {encoding} text (see source.csv_encoding)",
    "LINE SIZE OVER MAXIMUM": "line longer than the reader's maximum",
    "UNQUOTED VALUE": "a quote inside an unquoted value",
    "INVALID UNICODE": "not {encoding} text (see source.csv_encoding)",
}


def _helpers(view: str) -> list[str]:
    return [f"{view}_rej", f"{view}_rejscan", f"{view}_bad"]


def drop_staged(con: duckdb.DuckDBPyConnection, view: str) -> None:
    """Drop the view and the tables staging made for it."""
    con.execute(f"DROP VIEW IF EXISTS temp.{q(view)}")
    for table in _helpers(view):
        con.execute(f"DROP TABLE IF EXISTS temp.{q(table)}")


def _csv(path: Path, source: Source, *, lines: bool, errors: str) -> str:
    """DuckDB's CSV reader over the file: its fields as text, or (``lines``) each line whole."""
    if lines:
        opts = (
            f"columns = {{'line': 'VARCHAR'}}, header = false, auto_detect = false, "
            f"delim = {lit(_NO_DELIM)}, quote = '', escape = ''"
        )
    else:
        opts = (
            f"all_varchar = true, header = true, delim = {lit(source.csv_delimiter)}, "
            f"encoding = {lit(source.csv_encoding)}"
        )
    return f"read_csv({lit(str(path))}, {opts}, {errors})"


def _numbered(
    con: duckdb.DuckDBPyConnection, path: Path, source: Source, view: str, *, lines: bool
) -> str:
    """A SELECT of the file's parsed rows with ``__row``, ``__malformed`` and ``__raw``,
    the rows the reader rejected included (one row each, with why)."""
    rej, scan, bad = _helpers(view)
    con.execute(  # every field read (count(*) alone would skip parsing them)
        "SELECT max(length(COLUMNS(*))) FROM "
        + _csv(
            path,
            source,
            lines=lines,
            errors=f"store_rejects = true, rejects_table = {lit(rej)}, rejects_scan = {lit(scan)}",
        )
    ).fetchall()
    reader = _csv(path, source, lines=lines, errors="ignore_errors = true")
    plain = f"SELECT row_number() OVER () AS __k, * FROM {reader}"
    n_bad = con.execute(f"SELECT count(DISTINCT line) FROM {q(rej)}").fetchall()[0][0]
    cols = [str(r[0]) for r in con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()]
    if not n_bad:
        return (
            f"SELECT __k AS __row, * EXCLUDE (__k), NULL::VARCHAR AS __malformed, "
            f"NULL::VARCHAR AS __raw FROM ({plain})"
        )
    header = 0 if lines else 1
    encoding = source.csv_encoding
    why = "CASE error_type " + " ".join(
        f"WHEN {lit(k)} THEN {lit(v.format(encoding=encoding))}" for k, v in _WHY.items()
    )
    con.execute(
        f"CREATE TEMP TABLE {q(bad)} AS SELECT line - {header} AS r, "
        f"row_number() OVER (ORDER BY line) AS i, "
        f"'malformed_row|' || coalesce(first(column_name ORDER BY column_idx), '') || '|' || "
        f"first({why} ELSE error_message END ORDER BY column_idx) AS why, "
        f"first(csv_line) AS csv_line FROM {q(rej)} GROUP BY line"
    )
    nulls = ", ".join(f"NULL::VARCHAR AS {q(c)}" for c in cols)
    return f"""
        SELECT p.__k + coalesce(b.i, 0) AS __row, p.* EXCLUDE (__k),
               NULL::VARCHAR AS __malformed, NULL::VARCHAR AS __raw
        FROM ({plain}) p
        ASOF LEFT JOIN (SELECT r - i AS g, max(i) AS i FROM {q(bad)} GROUP BY 1) b ON p.__k > b.g
        UNION ALL
        SELECT r AS __row, {nulls}, why AS __malformed,
               to_json(struct_pack(line := csv_line)) AS __raw
        FROM {q(bad)}
    """


def _json_lines(con: duckdb.DuckDBPyConnection, path: Path, source: Source, view: str) -> str:
    lines = _numbered(con, path, source, view, lines=True)
    obj = "json_valid(line) AND json_type(line) = 'OBJECT'"
    have: dict[str, str] = {}  # DuckDB's names are case-insensitive: the first spelling wins
    for (key,) in con.execute(
        f"SELECT k FROM (SELECT unnest(json_keys(line)) AS k, __row FROM ({lines}) WHERE {obj}) "
        "GROUP BY k ORDER BY min(__row), k LIMIT 1000"
    ).fetchall():
        have.setdefault(str(key).lower(), str(key))
    shape = lit(json.dumps({k: "VARCHAR" for k in have.values()} or {"__none": "VARCHAR"}))
    fields = "".join(f", __j[{lit(k)}] AS {q(k)}" for k in have.values())
    return f"""
        SELECT __row{fields},
            CASE WHEN __malformed IS NOT NULL THEN __malformed
                 WHEN NOT json_valid(line) THEN 'malformed_row||not valid JSON (a truncated line?)'
                 WHEN __j IS NULL THEN 'malformed_row||not a JSON object'
            END AS __malformed,
            coalesce(__raw, CASE WHEN json_valid(line) THEN line
                                 ELSE to_json(struct_pack(line := line)) END) AS __raw
        FROM (
            SELECT *, CASE WHEN __malformed IS NULL AND {obj}
                           THEN json_transform(line, {shape}) END AS __j
            FROM ({lines})
            WHERE __malformed IS NOT NULL OR trim(coalesce(line, '')) <> ''
        )
    """


def stage(con: duckdb.DuckDBPyConnection, path: Path, source: Source, view: str) -> dict[str, str]:
    """Define the temp view ``view`` over the file; return its columns and their types
    (a JSON-lines file's columns are the keys its objects have, as text)."""
    drop_staged(con, view)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputFileError(
            str(path), f"unsupported file type {suffix!r} (.parquet, .csv, .jsonl)"
        )
    try:
        if path.stat().st_size == 0:
            raise InputFileError(
                str(path),
                "is empty (0 bytes): still being written? Land files by writing them "
                "elsewhere and renaming them into place (or set source.ready_marker)",
            )
        if suffix == ".parquet":
            select = (
                f"SELECT src.file_row_number + 1 AS __row, src.* EXCLUDE (file_row_number), "
                f"NULL::VARCHAR AS __malformed, NULL::VARCHAR AS __raw "
                f"FROM read_parquet({lit(str(path))}, file_row_number = true) src"
            )
        elif suffix == ".csv":
            select = _numbered(con, path, source, view, lines=False)
        else:
            select = _json_lines(con, path, source, view)
        con.execute(f"CREATE TEMP VIEW {q(view)} AS {select}")
        rows = con.execute(f"DESCRIBE SELECT * FROM {q(view)}").fetchall()
    except duckdb.Error as exc:
        drop_staged(con, view)
        raise InputFileError(str(path), f"cannot be read: {str(exc).splitlines()[0]}") from None
    return {str(r[0]): str(r[1]) for r in rows if str(r[0]) not in _META}
