"""The Spark engine's warehouse: plain partitioned Parquet tables, committed whole or not at all.

Under ``[spark] warehouse``::

    transactions/event_date=2026-03-02/<commit>-part-....parquet
    labels/reported_date=.../...        quarantine/feed=transactions/...
    scores/model_version=3/...          ingested_files/...   (the ledger of landing files)
    _staging/<commit>/                   a commit being written, or being moved into place

A job writes everything it adds (Spark writes each table into the commit's staging folder),
then commits: it writes ``_staging/<commit>/_COMMIT.json`` (the list of moves, written to a
temporary name and renamed: that rename is the commit point), moves every file into its
table, and removes the staging folder. :func:`recover`, run before every job, finishes a
commit that had reached its commit point and deletes one that had not, so a crash leaves
the tables as they were before the job or as they are after it, never in between (readers
that list a table while a commit is being moved may see part of it: a moment, on the same
machine). Files are moved by ``rename``: the warehouse must be a filesystem every executor
mounts (local, NFS, HDFS via a FUSE mount), not an object store.

The columns are the DuckDB warehouse's (a public contract): DuckDB reads these tables
directly (:func:`duckdb_views`), so alerts, reports, the registry and the gate work on what
Spark wrote.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from jobs.config import Config, Source
from jobs.ingest_sql import lit, q

# the table -> its partition column: a column of its own, or (DERIVED) a day of one, which
# the DuckDB views leave out
PARTITIONS = {
    "transactions": "event_date",
    "labels": "reported_date",
    "quarantine": "feed",
    "scores": "model_version",
    "ingested_files": "feed",
}
TABLES = tuple(PARTITIONS)
DERIVED = {"event_date": ("date", "event_time"), "reported_date": ("date", "reported_at")}
# the ledger last: a reader of the ledger never finds a file recorded whose rows are missing
_ORDER = ("transactions", "labels", "quarantine", "scores", "ingested_files")

BASE_COLUMNS = {
    "transactions": [
        ("transaction_id", "string"),
        ("event_time", "timestamp_ntz"),
        ("card_id", "string"),
        ("merchant_id", "string"),
        ("amount", "double"),
        ("source_file", "string"),
        ("source_row", "bigint"),
        ("ingested_at", "timestamp_ntz"),
    ],
    "labels": [
        ("transaction_id", "string"),
        ("is_fraud", "boolean"),
        ("reported_at", "timestamp_ntz"),
        ("source_file", "string"),
        ("source_row", "bigint"),
        ("ingested_at", "timestamp_ntz"),
        ("source", "string"),  # 'chargeback' (the feed, inline labels); analysts' are DuckDB's
    ],
    "quarantine": [
        ("source_file", "string"),
        ("source_row", "bigint"),
        ("feed", "string"),
        ("reason", "string"),
        ("field", "string"),
        ("detail", "string"),
        ("raw", "string"),
        ("quarantined_at", "timestamp_ntz"),
    ],
    "scores": [
        ("transaction_id", "string"),
        ("model_name", "string"),
        ("model_version", "int"),
        ("role", "string"),
        ("score", "double"),
        ("scored_at", "timestamp_ntz"),
        ("run_id", "string"),
    ],
    "ingested_files": [
        ("path", "string"),
        ("feed", "string"),
        ("size_bytes", "bigint"),
        ("sha256", "string"),
        ("rows_read", "bigint"),
        ("rows_loaded", "bigint"),
        ("rows_quarantined", "bigint"),
        ("ingested_at", "timestamp_ntz"),
        ("status", "string"),
        ("note", "string"),
        ("previous_sha256", "string"),
    ],
}


def columns(s: Source, table: str) -> list[tuple[str, str]]:
    """The table's columns and Spark types in the DuckDB warehouse's order, then a derived
    partition column (transactions carry the config's extra columns)."""
    cols = list(BASE_COLUMNS[table])
    if table == "transactions":
        cols += [(n, "double") for n in s.numeric_columns]
        cols += [(n, "string") for n in s.categorical_columns]
    part = PARTITIONS[table]
    return [*cols, (part, DERIVED[part][0])] if part in DERIVED else cols


def ddl(source: Source, table: str) -> str:
    """The table's schema as Spark DDL (``transaction_id string, ...``)."""
    return ", ".join(f"`{n}` {t}" for n, t in columns(source, table))


def table_path(root: Path, table: str) -> Path:
    return root / table


def has_rows(cfg: Config, table: str) -> bool:
    folder = table_path(cfg.spark_warehouse, table)
    return folder.is_dir() and any(folder.rglob("*.parquet"))


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Commit:
    """One job's additions to the tables, staged, then moved into place at once."""

    root: Path
    commit_id: str

    @classmethod
    def begin(cls, root: Path) -> Commit:
        commit_id = f"{_utc_now():%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"
        return cls(root, commit_id)

    @property
    def folder(self) -> Path:
        return self.root / "_staging" / self.commit_id

    def staging(self, table: str) -> Path:
        """Where the job writes what it adds to ``table`` (Spark's ``partitionBy`` layout)."""
        return self.folder / table

    def moves(self) -> list[tuple[str, str]]:
        out = []
        for table in _ORDER:
            staged = self.staging(table)
            for f in sorted(staged.rglob("*.parquet")) if staged.is_dir() else []:
                if f.name.startswith((".", "_")):
                    continue
                rel = f.relative_to(staged)
                dest = self.root / table / rel.parent / f"{self.commit_id}-{rel.name}"
                out.append((str(f), str(dest)))
        return out

    def commit(self) -> int:
        """Make the staged files part of the tables; returns how many were moved."""
        n = self.seal()
        _apply(self.folder)
        return n

    def seal(self) -> int:
        """The commit point: the journal of moves, written whole (a crash after it is
        finished by :func:`recover`, one before it rolled back)."""
        moves = self.moves()
        journal = self.folder / "_COMMIT.json"
        tmp = self.folder / "_COMMIT.json.tmp"
        with tmp.open("w") as fh:
            json.dump(moves, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, journal)  # the commit point
        return len(moves)

    def abandon(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _apply(folder: Path) -> None:
    """Move the files a committed journal lists (those still staged), then drop the folder."""
    moves = json.loads((folder / "_COMMIT.json").read_text())
    for src, dest in moves:
        if os.path.exists(src):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            os.replace(src, dest)
    shutil.rmtree(folder, ignore_errors=True)


def recover(root: Path) -> list[str]:
    """Finish the commits that reached their commit point, delete the others (a crashed job's
    staging); returns what was done, one line each."""
    staging = root / "_staging"
    done = []
    for folder in sorted(staging.iterdir()) if staging.is_dir() else []:
        if (folder / "_COMMIT.json").exists():
            _apply(folder)
            done.append(f"finished commit {folder.name}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
            done.append(f"rolled back commit {folder.name}")
    return done


def parquet_scan(cfg: Config, table: str) -> str:
    """A DuckDB subquery over the table's files with its columns, the partition column
    dropped; an empty table reads as no rows of the right types."""
    cols = [(n, t) for n, t in columns(cfg.settings.source, table) if n not in DERIVED]
    duck = {
        "string": "VARCHAR",
        "timestamp_ntz": "TIMESTAMP",
        "bigint": "BIGINT",
        "double": "DOUBLE",
        "boolean": "BOOLEAN",
        "int": "INTEGER",
    }
    if not has_rows(cfg, table):
        nulls = ", ".join(f"CAST(NULL AS {duck[t]}) AS {q(n)}" for n, t in cols)
        return f"(SELECT {nulls} WHERE false)"
    names = ", ".join(f"CAST({q(n)} AS {duck[t]}) AS {q(n)}" for n, t in cols)
    files = lit(str(table_path(cfg.spark_warehouse, table) / "**" / "*.parquet"))
    return (
        f"(SELECT {names} FROM read_parquet({files}, hive_partitioning = true, "
        "union_by_name = true))"
    )


def duckdb_views(con: duckdb.DuckDBPyConnection, cfg: Config, *, temp: bool = True) -> None:
    """Views over the Spark engine's tables, named as the DuckDB warehouse's tables
    (``transactions``, ``labels``, ``quarantine``, ``scores``, ``ingested_files``).

    ``temp``: temporary views, which DuckDB finds before the warehouse's own tables of the
    same names, so the alerts, reports and the gate read what Spark wrote through an
    ordinary warehouse connection; they vanish with it."""
    recover(cfg.spark_warehouse)
    kind = "TEMP VIEW" if temp else "VIEW"
    for table in TABLES:
        # the ledger is appended to: a file's latest row is its row (a changed file's new one)
        latest = (
            " QUALIFY row_number() OVER (PARTITION BY path, feed ORDER BY ingested_at DESC) = 1"
            if table == "ingested_files"
            else ""
        )
        # a score's rowid, as the warehouse's table has one (the performance report keeps it
        # to find a row again): a hash of its key, the same in every query
        rowid = (
            ", hash(transaction_id, model_name, model_version) AS rowid"
            if table == "scores"
            else ""
        )
        con.execute(
            f"CREATE OR REPLACE {kind} {q(table)} AS SELECT *{rowid} FROM "
            f"{parquet_scan(cfg, table)}{latest}"
        )
