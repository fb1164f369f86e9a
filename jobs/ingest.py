"""Ingest: new landing files into the warehouse, whole or not at all; nothing lost, nothing stuck.

For each file matched by ``[source] transactions`` (and ``labels``), in path order
(:mod:`jobs.landing` finds them and asks the ledger about each):

1. a file the ledger has with the same sha256 is skipped;
2. the file is read by DuckDB (:mod:`jobs.ingest_read`): Parquet, CSV or JSON lines; a
   row the reader cannot parse (a ragged CSV row, bytes in the wrong encoding, a truncated
   JSON line) is a *row* problem, not the file's. A file that cannot be read at all
   (empty, not its format, lacking a mapped column) is **set aside**: recorded in the
   ledger with status ``set_aside`` and why, nothing of it loaded, and the other files go
   on; it is read again once its content changes;
3. values are coerced (TRY_CAST) and validated in SQL; each bad row goes to
   ``quarantine`` with the file, its 1-based row number, the raw values as JSON, a reason
   code and the field;
4. good rows, quarantined rows and the ledger row are written in ONE transaction, with
   the keyed state that describes them (:func:`jobs.keys.assign_keys`: card and merchant
   keys, exact amounts, known frauds), so a crash never leaves rows without their keys.

Analysts read the warehouse while files are ingested (:mod:`jobs.warehouse_windows`):
files are read, typed and checked in the stage's own in-memory DuckDB connection, with the
warehouse attached read-only where a check needs it (the ledger, ids already stored); the
file is attached read-write only for each write, one transaction: a group of clean files
inserted from the rows already staged, or one file's good rows, quarantine and ledger row.
A changed file's revision reads and writes in one window (it compares with stored rows).

A new version of an ingested file is compared with what it loaded
(:mod:`jobs.ingest_revise`): new rows loaded, changed rows quarantined, the ledger says
``changed``; ``--reingest PATH`` replaces a file's rows. Set-aside and changed files are
the result's :attr:`IngestResult.problems`: the CLI exits 1 on them.

Clean files (no bad row, no id seen before: the common case) go in groups of up to
``GROUP_FILES`` files and ``GROUP_BYTES``: checked by two aggregate passes, then inserted
by one statement (Parquet files of one schema by one scan, so both cores work and row
groups come out full) in one transaction with their ledger rows. A group with any bad row
falls back to file by file. Ingest runs under ``[warehouse] ingest_memory_limit``.

Reason codes: ``malformed_row``, ``missing_field``, ``bad_timestamp``, ``bad_amount``,
``non_finite_amount``, ``negative_amount``, ``future_timestamp``, ``bad_value`` (an extra
numeric column), ``bad_label``, ``duplicate_in_file``, ``duplicate_in_warehouse``,
``changed_after_ingest``; for the labels feed ``malformed_row``, ``missing_field``,
``bad_timestamp``, ``bad_label``, ``duplicate_label``.

Rows never become Python objects: reading, mapping, validation, de-duplication and the
insert are DuckDB SQL over the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from jobs import logs
from jobs.config import Config, Source, Warehouse
from jobs.dispositions import ingest_dispositions
from jobs.errors import InputFileError
from jobs.ingest_checks import check_labels, check_transactions, clean_group, typed_transactions
from jobs.ingest_load import (
    load_labels,
    load_transactions,
    quarantine_and_record,
    record,
    set_aside,
    summarise,
)
from jobs.ingest_read import drop_staged, stage
from jobs.ingest_revise import revise_labels, revise_transactions
from jobs.ingest_sql import lit, parquet_rows
from jobs.keys import assign_keys
from jobs.landing import (
    LOADED,
    FileResult,
    IngestResult,
    Landing,
    find,
    landing_for,
    look_up,
)
from jobs.runs import utcnow
from jobs.warehouse import is_disk_full, transaction
from jobs.warehouse_windows import Access, Windows, access_of

log = logs.get("ingest")

# clean transactions files are checked and inserted together, up to this many and this size
GROUP_FILES = 16
GROUP_BYTES = 16 * 2**20
_TEMP = ("fw_checked", "fw_prior", "fw_cmp", "fw_dropped")
CLEAN = "SELECT * FROM fw_clean"  # a clean group's rows, staged before its write window


@dataclass(frozen=True)
class _Staged:
    """A transactions file behind its temp view, typed and checked in SQL (nothing written)."""

    landing: Landing
    view: str
    types: dict[str, str]  # the file's own columns and their types
    typed: str  # SELECT of the typed rows
    problem: str  # CASE naming a row's problem, NULL for a good row


@contextmanager
def _memory_limit(con: duckdb.DuckDBPyConnection, w: Warehouse) -> Iterator[None]:
    """DuckDB's memory cap at ``[warehouse] ingest_memory_limit`` for the block, then back
    at ``memory_limit``. Ingest streams: past the cap DuckDB spills to disk instead of
    caching, so its memory stays flat however much is landed (``benchmarks/ingest.py``)."""
    con.execute(f"SET memory_limit = {lit(w.ingest_limit())}")  # validated by config
    try:
        yield
    finally:
        con.execute(f"SET memory_limit = {lit(w.memory_limit)}")


def _unreadable(f: Landing, exc: duckdb.Error) -> InputFileError:
    """A file DuckDB failed on half-way; a full disk is not the file's fault: raised as is."""
    if is_disk_full(exc):
        raise exc
    return InputFileError(str(f.path), f"cannot be read: {str(exc).splitlines()[0]}")


def _stage(con: duckdb.DuckDBPyConnection, source: Source, f: Landing, view: str) -> _Staged:
    types = stage(con, f.path, source, view)
    try:
        typed, problem = typed_transactions(source, f.path, types, view)
    except InputFileError:
        drop_staged(con, view)
        raise
    return _Staged(f, view, types, typed, problem)


def _group_rows(con: duckdb.DuckDBPyConnection, source: Source, group: list[_Staged]) -> str:
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
            source, first.landing.path, first.types, "fw_raw_group", keep="__fw_file"
        )
        index = " ".join(f"WHEN {lit(str(p))} THEN {i}" for i, p in enumerate(paths))
        return (
            f"SELECT *, CASE __fw_file {index} END AS __file, {problem} AS __problem FROM ({typed})"
        )
    return " UNION ALL ".join(
        f"SELECT *, {i} AS __file, {s.problem} AS __problem FROM ({s.typed})"
        for i, s in enumerate(group)
    )


def _load_clean(a: Access, source: Source, group: list[_Staged]) -> list[FileResult] | None:
    """Insert the files in ONE transaction when every row of every one is good (the common
    case). The files are read once, by one statement over all of them (both cores work),
    into the temp table ``fw_clean``, checked there, and inserted from it in a short write
    window. None, with nothing written, when a row of any has a problem or a file cannot be
    read to the end."""
    try:
        a.con.execute(
            f"CREATE OR REPLACE TEMP TABLE fw_clean AS {_group_rows(a.con, source, group)}"
        )
        with a.reading() as con:
            counts = clean_group(con, CLEAN, len(group))
    except duckdb.Error as exc:  # e.g. a file broken half-way: the file-by-file path names it
        if is_disk_full(exc):
            raise
        return None
    if counts is None:
        return None
    with a.writing("ingest a group of files") as con, transaction(con):
        labels = load_transactions(con, source, CLEAN, [s.landing.name for s in group])
        done = [
            record(con, s.landing, "transactions", n, n, k)
            for s, n, k in zip(group, counts, labels, strict=True)
        ]
        _keyed(con)
        return done


def _load_checked(a: Access, source: Source, s: _Staged) -> FileResult:
    """One file with bad rows: checked with the warehouse read-only, then good rows loaded
    and bad ones quarantined in one transaction."""
    try:
        with a.reading() as con:
            check_transactions(con, s.typed, s.problem)
        with a.writing("ingest a file with bad rows") as con, transaction(con):
            good = "SELECT *, 0 AS __file FROM fw_checked WHERE reason IS NULL"
            [labels] = load_transactions(con, source, good, [s.landing.name])
            res = quarantine_and_record(con, s.landing, "transactions", s.types, s.view, labels)
            _keyed(con)
            return res
    except duckdb.Error as exc:
        err = _unreadable(s.landing, exc)
        with a.writing("set a file aside") as con:
            return set_aside(con, s.landing, "transactions", err)
    finally:
        a.con.execute("DROP TABLE IF EXISTS temp.fw_checked")


def _ingest_group(a: Access, source: Source, group: list[_Staged]) -> list[FileResult]:
    """The staged files, in order: together when all clean, else one by one."""
    try:
        done = _load_clean(a, source, group)
        if done is None:
            done = [_load_checked(a, source, s) for s in group]
    finally:
        a.con.execute("DROP TABLE IF EXISTS temp.fw_clean")
        a.con.execute("DROP VIEW IF EXISTS temp.fw_raw_group")
        for s in group:
            drop_staged(a.con, s.view)
    for res in done:
        logs.event(log, "file ingested", **res.to_dict())
    return done


def _keyed(con: duckdb.DuckDBPyConnection) -> None:
    """The keyed state for the rows just written, in their transaction (jobs/keys.py)."""
    done = assign_keys(con)
    logs.event(log, "keys assigned", "debug", **done.to_dict())


def _revise(a: Access, source: Source, s: _Staged, *, replace: bool) -> FileResult:
    """A new version of an ingested transactions file, in one transaction."""
    try:
        with a.writing("revise a changed file") as con, transaction(con):
            res = revise_transactions(
                con,
                source,
                s.landing,
                s.typed,
                s.problem,
                list(s.types),
                s.view,
                replace=replace,
            )
            _keyed(con)
    except duckdb.Error as exc:
        if replace:
            raise _unreadable(s.landing, exc) from None
        err = _unreadable(s.landing, exc)
        with a.writing("set a file aside") as con:
            res = set_aside(con, s.landing, "transactions", err)
    finally:
        for table in _TEMP:
            a.con.execute(f"DROP TABLE IF EXISTS temp.{table}")
        drop_staged(a.con, s.view)
    logs.event(log, f"landing file {res.status}", "warning", **res.to_dict())
    return res


def _ingest_labels(a: Access, source: Source, f: Landing, *, replace: bool = False) -> FileResult:
    try:
        types = stage(a.con, f.path, source, "fw_raw")
        if f.changed or replace:
            with a.writing("revise a changed labels file") as con, transaction(con):
                res = revise_labels(con, source, f, types, replace=replace)
                _keyed(con)
        else:
            with a.reading() as con:
                check_labels(con, source, f.path, types)
            with a.writing("ingest a labels file") as con, transaction(con):
                load_labels(con, Path(f.name))
                res = quarantine_and_record(con, f, "labels", types, "fw_raw", 0)
                res = FileResult(**{**res.__dict__, "labels_loaded": res.rows_loaded})
                _keyed(con)
    except (InputFileError, duckdb.Error) as exc:
        err = exc if isinstance(exc, InputFileError) else _unreadable(f, exc)
        if replace:
            raise err from None
        with a.writing("set a file aside") as con:
            res = set_aside(con, f, "labels", err)
    finally:
        drop_staged(a.con, "fw_raw")
        a.con.execute("DROP TABLE IF EXISTS temp.fw_checked")
    logs.event(log, "file ingested", **res.to_dict())
    return res


def _transactions(
    a: Access, cfg: Config, files: list[Path], result: IngestResult, bar: Any
) -> None:
    """The transactions files: new ones staged and loaded in groups of up to ``GROUP_FILES``
    files and ``GROUP_BYTES`` (a bigger file is a group of its own), changed ones one by one,
    unreadable ones set aside; every file's outcome goes into ``result``."""
    group: list[_Staged] = []

    def flush() -> None:
        if group:
            result.files.extend(_ingest_group(a, cfg.settings.source, group))
            bar.update(len(group))
            group.clear()

    with a.reading() as con:  # what the ledger knows of each (only this job writes it)
        found = [look_up(con, cfg.root, path, "transactions") for path in files]
    for got in found:
        if isinstance(got, FileResult):
            result.files.append(got)
            bar.update(1)
            continue
        size = sum(s.landing.size for s in group)
        if group and (len(group) >= GROUP_FILES or size + got.size > GROUP_BYTES or got.changed):
            flush()
        try:
            staged = _stage(
                a.con,
                cfg.settings.source,
                got,
                "fw_raw_rev" if got.changed else f"fw_raw_{len(group)}",
            )
        except InputFileError as exc:
            with a.writing("set a file aside") as con:
                result.files.append(set_aside(con, got, "transactions", exc))
            bar.update(1)
            continue
        if got.changed:
            result.files.append(_revise(a, cfg.settings.source, staged, replace=False))
            bar.update(1)
        else:
            group.append(staged)
    flush()


def reingest(
    con: duckdb.DuckDBPyConnection | Access, cfg: Config, paths: Sequence[Path]
) -> list[FileResult]:
    """Replace the rows of each ingested file by its current content (``--reingest``), each
    in one transaction; a file that cannot be read raises, with nothing of it changed."""
    a = access_of(con)
    out = []
    for path in paths:
        with a.reading() as rcon:
            f, feed = landing_for(rcon, cfg.root, path)
        if feed == "labels":
            out.append(_ingest_labels(a, cfg.settings.source, f, replace=True))
        else:
            out.append(
                _revise(
                    a,
                    cfg.settings.source,
                    _stage(a.con, cfg.settings.source, f, "fw_raw_rev"),
                    replace=True,
                )
            )
    return out


def ingest(
    con: duckdb.DuckDBPyConnection | Access, cfg: Config, *, reingest_paths: Sequence[Path] = ()
) -> IngestResult:
    """Ingest every new or changed transactions file, then every labels file (and first
    replace the rows of ``reingest_paths``). A file that cannot be read is set aside and
    the others go on; :attr:`IngestResult.problems` says what needs a person. Through
    short windows on the warehouse (a connection held by the caller is held throughout)."""
    a = access_of(con)
    result = IngestResult()
    started = utcnow()
    transactions, labels = find(cfg, "transactions"), find(cfg, "labels")
    result.waiting = [str(p) for p in transactions.waiting + labels.waiting]
    total = len(transactions.ready) + len(labels.ready) + len(reingest_paths)
    with _memory_limit(a.con, cfg.settings.warehouse), logs.progress("ingest", total) as bar:
        result.files.extend(reingest(a, cfg, reingest_paths))
        bar.update(len(reingest_paths))
        _transactions(a, cfg, transactions.ready, result, bar)
        with a.reading() as rcon:
            found = [look_up(rcon, cfg.root, path, "labels") for path in labels.ready]
        for got in found:
            result.files.append(
                got if isinstance(got, FileResult) else _ingest_labels(a, cfg.settings.source, got)
            )
            bar.update(1)
        with a.writing("ingest the dispositions feed") as dcon:  # issue 18
            result.files.extend(ingest_dispositions(dcon, cfg))
        if any(f.status in LOADED for f in result.files):  # fold what was written into the file
            a.checkpoint()
    with a.reading() as rcon:
        summarise(rcon, result, started)
    return result


def ingest_job(cfg: Config, *, reingest_paths: Sequence[Path] = ()) -> IngestResult:
    """The ``ingest`` job: ingest through short windows on the warehouse under a run-ledger
    row (counts, the windows, and the problems that make it ``needs_attention``)."""
    from jobs.runs import recorded_run

    with recorded_run(cfg, "ingest") as rec, Windows(cfg) as windows:
        result = ingest(windows, cfg, reingest_paths=reingest_paths)
        rec.counts["ingest"] = result.to_dict()
        rec.counts["windows"] = {"ingest": windows.stats.to_dict()}
        rec.problems += result.problems
    return result
