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

Clean files (no bad row, no id seen before: the common case) go in groups of
up to ``GROUP_FILES`` files and ``GROUP_BYTES``: checked by two aggregate
passes, then inserted by one statement (Parquet files of one schema by one
scan, so both cores work and row groups come out full) in one transaction with
their ledger rows. A group with any bad row falls back to file by file. Either
way a file is whole or absent, and a file that cannot be read stops the ingest
with the files before it committed. Ingest runs under
``[warehouse] ingest_memory_limit``.

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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from jobs import logs
from jobs.config import Config
from jobs.errors import InputFileError
from jobs.ingest_checks import (
    check_labels,
    check_transactions,
    clean_group,
    stage_raw,
    typed_transactions,
)
from jobs.ingest_load import load_labels, load_transactions
from jobs.ingest_sql import lit, parquet_rows, q, quarantine_insert
from jobs.runs import utcnow
from jobs.warehouse import transaction

log = logs.get("ingest")

# clean transactions files are checked and inserted together, up to this many and this size
GROUP_FILES = 16
GROUP_BYTES = 16 * 2**20


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


def recorded_path(cfg: Config, path: Path) -> str:
    """How a landing file is recorded: relative to the config's folder when inside it, so a
    deployment can move (or be copied) without its files looking new."""
    try:
        return str(path.resolve().relative_to(cfg.root))
    except ValueError:
        return str(path.resolve())


@dataclass(frozen=True)
class _Landing:
    """A landing file not yet in the ledger."""

    path: Path
    name: str  # as recorded
    size: int
    digest: str


@dataclass(frozen=True)
class _Staged:
    """A transactions file behind its temp view, typed and checked in SQL (nothing written)."""

    landing: _Landing
    view: str
    types: dict[str, str]  # the file's own columns and their types
    typed: str  # SELECT of the typed rows
    problem: str  # CASE naming a row's problem, NULL for a good row


def _landing(
    con: duckdb.DuckDBPyConnection, cfg: Config, path: Path, feed: str
) -> _Landing | FileResult:
    """The file to ingest, or the ledger's verdict on it: skipped (same content) or changed."""
    name = recorded_path(cfg, path)
    size = path.stat().st_size
    digest = sha256_of(path)
    known = con.execute(
        "SELECT sha256 FROM ingested_files WHERE path = ? AND feed = ?", [name, feed]
    ).fetchall()
    if not known:
        return _Landing(path, name, size, digest)
    if known[0][0] == digest:
        return FileResult(name, feed, "skipped")
    logs.event(log, "landing file changed after ingestion; not ingested again", 30, path=name)
    return FileResult(name, feed, "changed")


@contextmanager
def _memory_limit(con: duckdb.DuckDBPyConnection, cfg: Config) -> Iterator[None]:
    """DuckDB's memory cap at ``[warehouse] ingest_memory_limit`` for the block, then back
    at ``memory_limit``. Ingest streams: past the cap DuckDB spills to disk instead of
    caching, so its memory stays flat however much is landed (``benchmarks/ingest.py``)."""
    w = cfg.settings.warehouse
    con.execute(f"SET memory_limit = {lit(w.ingest_limit())}")  # validated by config
    try:
        yield
    finally:
        con.execute(f"SET memory_limit = {lit(w.memory_limit)}")


def _record(
    con: duckdb.DuckDBPyConnection, f: _Landing, feed: str, read: int, loaded: int
) -> FileResult:
    con.execute(
        "INSERT INTO ingested_files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [f.name, feed, f.size, f.digest, read, loaded, read - loaded, utcnow()],
    )
    return FileResult(f.name, feed, "ingested", read, loaded, read - loaded)


def _stage(con: duckdb.DuckDBPyConnection, cfg: Config, f: _Landing, view: str) -> _Staged:
    types = stage_raw(con, f.path, cfg.settings.source.csv_delimiter, view)
    typed, problem = typed_transactions(cfg, f.path, types, view)
    return _Staged(f, view, types, typed, problem)


def _group_rows(con: duckdb.DuckDBPyConnection, cfg: Config, group: list[_Staged]) -> str:
    """Every row of the group, typed, with ``__file`` (the file's index) and ``__problem``.

    Parquet files of one schema are read by one scan over all of them; other files
    each by their own, in a UNION ALL."""
    first = group[0]
    same_parquet = all(
        s.landing.path.suffix.lower() == ".parquet" and s.types == first.types for s in group
    )
    if len(group) > 1 and same_parquet:
        paths = [s.landing.path for s in group]
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW fw_raw_group AS SELECT * FROM "
            f"{parquet_rows(paths, '__fw_file')}"
        )
        typed, problem = typed_transactions(
            cfg, first.landing.path, first.types, "fw_raw_group", keep="__fw_file"
        )
        index = " ".join(f"WHEN {lit(str(p))} THEN {i}" for i, p in enumerate(paths))
        return (
            f"SELECT *, CASE __fw_file {index} END AS __file, {problem} AS __problem FROM ({typed})"
        )
    return " UNION ALL ".join(
        f"SELECT *, {i} AS __file, {s.problem} AS __problem FROM ({s.typed})"
        for i, s in enumerate(group)
    )


def _load_clean(
    con: duckdb.DuckDBPyConnection, cfg: Config, group: list[_Staged]
) -> list[FileResult] | None:
    """Insert the files in ONE transaction when every row of every one is good (the common
    case): one statement over all of them, so both cores work. None, with nothing written,
    when a row of any has a problem or a file cannot be read to the end."""
    try:
        rows = _group_rows(con, cfg, group)
        counts = clean_group(con, rows, len(group))
    except duckdb.Error:  # e.g. a CSV broken half-way: the file-by-file path names it
        return None
    if counts is None:
        return None
    with transaction(con):
        load_transactions(con, cfg, rows, [s.landing.name for s in group])
        results = [
            _record(con, s.landing, "transactions", n, n)
            for s, n in zip(group, counts, strict=True)
        ]
    return results


def _load_checked(con: duckdb.DuckDBPyConnection, cfg: Config, s: _Staged) -> FileResult:
    """One file with bad rows: good rows loaded, bad ones quarantined, in one transaction."""
    try:
        with transaction(con):
            check_transactions(con, s.typed, s.problem)
            good = "SELECT *, 0 AS __file FROM fw_checked WHERE reason IS NULL"
            load_transactions(con, cfg, good, [s.landing.name])
            return _quarantine_and_record(con, s.landing, "transactions", list(s.types), s.view)
    finally:
        con.execute("DROP TABLE IF EXISTS temp.fw_checked")


def _quarantine_and_record(
    con: duckdb.DuckDBPyConnection, f: _Landing, feed: str, cols: list[str], view: str
) -> FileResult:
    read, loaded = (
        int(v)
        for v in con.execute(
            "SELECT count(*), count(*) FILTER (WHERE reason IS NULL) FROM fw_checked"
        ).fetchall()[0]
    )
    if read > loaded:  # raw values are read back from the file for the bad rows only
        con.execute(quarantine_insert(Path(f.name), feed, cols, view), [utcnow()])
    return _record(con, f, feed, read, loaded)


def _ingest_transactions(
    con: duckdb.DuckDBPyConnection, cfg: Config, group: list[_Staged]
) -> list[FileResult]:
    """The staged files, in order: together when all clean, else one by one."""
    try:
        done = _load_clean(con, cfg, group)
        if done is None:
            done = [_load_checked(con, cfg, s) for s in group]
    finally:
        for view in ["fw_raw_group", *(s.view for s in group)]:
            con.execute(f"DROP VIEW IF EXISTS temp.{q(view)}")
    for res in done:
        logs.event(log, "file ingested", **res.__dict__)
    return done


def _ingest_labels(con: duckdb.DuckDBPyConnection, cfg: Config, f: _Landing) -> FileResult:
    try:
        types = stage_raw(con, f.path, cfg.settings.source.csv_delimiter, "fw_raw")
        with transaction(con):
            check_labels(con, cfg, f.path, types)
            load_labels(con, Path(f.name))
            res = _quarantine_and_record(con, f, "labels", list(types), "fw_raw")
    finally:
        con.execute("DROP VIEW IF EXISTS temp.fw_raw")
        con.execute("DROP TABLE IF EXISTS temp.fw_checked")
    logs.event(log, "file ingested", **res.__dict__)
    return res


def ingest_file(con: duckdb.DuckDBPyConnection, cfg: Config, path: Path, feed: str) -> FileResult:
    """Ingest one file in one transaction; return what happened (ingested, skipped, changed)."""
    got = _landing(con, cfg, path, feed)
    if isinstance(got, FileResult):
        return got
    if feed == "labels":
        return _ingest_labels(con, cfg, got)
    return _ingest_transactions(con, cfg, [_stage(con, cfg, got, "fw_raw")])[0]


def landing_files(pattern: str | None) -> list[Path]:
    if not pattern:
        return []
    return sorted(Path(p) for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))


def _groups(
    con: duckdb.DuckDBPyConnection, cfg: Config, files: list[Path], result: IngestResult, bar: Any
) -> Iterator[list[_Staged]]:
    """The new transactions files, staged, in groups of up to ``GROUP_FILES`` files and
    ``GROUP_BYTES`` (a bigger file is a group of its own). Files the ledger knows are
    recorded as skipped or changed on the way. A file that cannot be staged ends the
    groups: the ones before it are yielded first, then its error is raised."""
    group: list[_Staged] = []
    for path in files:
        got = _landing(con, cfg, path, "transactions")
        if isinstance(got, FileResult):
            result.files.append(got)
            bar.update(1)
            continue
        size = sum(s.landing.size for s in group)
        if group and (len(group) >= GROUP_FILES or size + got.size > GROUP_BYTES):
            yield group
            group = []
        try:
            group.append(_stage(con, cfg, got, f"fw_raw_{len(group)}"))
        except InputFileError:
            if group:
                yield group
            raise
    if group:
        yield group


def ingest(cfg: Config, con: duckdb.DuckDBPyConnection) -> IngestResult:
    """Ingest every new transactions file, then every new labels file.

    A file that cannot be ingested at all stops the ingest with an
    :class:`InputFileError`; the files before it stay committed.
    """
    result = IngestResult()
    transactions = landing_files(cfg.transactions_glob)
    labels = landing_files(cfg.labels_glob)
    with _memory_limit(con, cfg), logs.progress("ingest", len(transactions) + len(labels)) as bar:
        try:
            for group in _groups(con, cfg, transactions, result, bar):
                for res in _ingest_transactions(con, cfg, group):
                    result.files.append(res)
                    bar.update(1)
            for path in labels:
                result.files.append(ingest_file(con, cfg, path, "labels"))
                bar.update(1)
            if result.files_ingested:  # fold what was written into the file, within the cap
                con.execute("CHECKPOINT")
        except InputFileError as exc:
            done = result.files_ingested
            raise InputFileError(
                exc.path,
                str(exc).split(": ", 1)[1]
                + f" — nothing of it was written; {done} file(s) before it were ingested",
                column=None,
            ) from None
    if result.files_ingested:
        rows = con.execute(
            "SELECT reason, count(*) FROM quarantine WHERE source_file IN "
            "(SELECT unnest(?::VARCHAR[])) GROUP BY reason",
            [[f.path for f in result.files if f.status == "ingested"]],
        ).fetchall()
        result.quarantined_by_reason = {r: int(n) for r, n in rows}
    return result
