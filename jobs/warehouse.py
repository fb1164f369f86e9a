"""The DuckDB warehouse: opening it (one writer at a time), its versioned schema.

The tables are a public contract (analysts query them with plain SQL) and
are documented in the README. The schema is versioned in ``schema_version``;
:data:`MIGRATIONS` lists the steps in order and :func:`migrate` applies the
missing ones inside one transaction, so a later release can evolve the schema
of an existing warehouse.

DuckDB lets one process write a file, and a process that writes it locks out every
other, readers included. So a writing job holds the warehouse read-write only while it
writes: short stages open it with :func:`configured_warehouse`, and the long ones
(ingest, scoring) attach it read-only to read and read-write only for each one-transaction
write (:mod:`jobs.warehouse_windows`). The job holds for its whole length the *writer
lock* (``<data_dir>/warehouse.duckdb.writer.lock``): a second writing job fails fast with
:class:`~jobs.errors.WarehouseLocked` and changes nothing, while analysts' read-only
connections get in between any two writes. A command that finds the file held by another
process waits up to ``[warehouse] lock_wait_seconds`` (per write), then says so.

A full disk, or a ``data_dir`` through a regular file, is a clear
:class:`~jobs.errors.FraudwatchError` (exit 1): DuckDB rolls the statement's transaction
back, so the warehouse stays as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import duckdb

from jobs.config import Config
from jobs.errors import FraudwatchError, NotEnoughData
from jobs.warehouse_access import (  # noqa: F401 (is_disk_full and disk_full: for the jobs)
    connect,
    disk_full,
    is_disk_full,
    make_folder,
    storage_errors,
    writer_lock,
)

SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS transactions (
    transaction_id VARCHAR NOT NULL,
    event_time     TIMESTAMP NOT NULL,
    card_id        VARCHAR NOT NULL,
    merchant_id    VARCHAR NOT NULL,
    amount         DOUBLE NOT NULL,
    source_file    VARCHAR NOT NULL,
    source_row     BIGINT NOT NULL,
    ingested_at    TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS labels (
    transaction_id VARCHAR NOT NULL,
    is_fraud       BOOLEAN NOT NULL,
    reported_at    TIMESTAMP NOT NULL,
    source_file    VARCHAR NOT NULL,
    source_row     BIGINT NOT NULL,
    ingested_at    TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    source_file    VARCHAR NOT NULL,
    source_row     BIGINT,
    feed           VARCHAR NOT NULL,      -- 'transactions' | 'labels'
    reason         VARCHAR NOT NULL,      -- e.g. missing_field, bad_timestamp
    field          VARCHAR,
    detail         VARCHAR,
    raw            VARCHAR,               -- the row's raw values as JSON
    quarantined_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS ingested_files (
    path           VARCHAR NOT NULL,
    feed           VARCHAR NOT NULL,
    size_bytes     BIGINT NOT NULL,
    sha256         VARCHAR NOT NULL,
    rows_read      BIGINT NOT NULL,
    rows_loaded    BIGINT NOT NULL,
    rows_quarantined BIGINT NOT NULL,
    ingested_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (path, feed)
);
CREATE TABLE IF NOT EXISTS scores (
    transaction_id VARCHAR NOT NULL,
    model_name     VARCHAR NOT NULL,
    model_version  INTEGER NOT NULL,
    role           VARCHAR NOT NULL,      -- 'champion' | 'challenger'
    score          DOUBLE NOT NULL,
    scored_at      TIMESTAMP NOT NULL,
    run_id         VARCHAR NOT NULL,
    PRIMARY KEY (transaction_id, model_name, model_version)
);
CREATE TABLE IF NOT EXISTS alerts (
    transaction_id VARCHAR NOT NULL,
    channel        VARCHAR NOT NULL,      -- 'file' | 'email' | 'slack'
    status         VARCHAR NOT NULL,      -- 'pending' | 'sent' | 'failed'
    attempts       INTEGER NOT NULL,
    last_error     VARCHAR,
    created_at     TIMESTAMP NOT NULL,
    sent_at        TIMESTAMP,
    alert_day      DATE NOT NULL,
    card_id        VARCHAR NOT NULL,
    merchant_id    VARCHAR NOT NULL,
    amount         DOUBLE NOT NULL,
    event_time     TIMESTAMP NOT NULL,
    score          DOUBLE NOT NULL,
    model_name     VARCHAR NOT NULL,
    model_version  INTEGER NOT NULL,
    reasons        VARCHAR NOT NULL,      -- JSON list of the top reasons, in words
    run_id         VARCHAR NOT NULL,
    PRIMARY KEY (transaction_id, channel)
);
CREATE TABLE IF NOT EXISTS runs (
    run_id         VARCHAR PRIMARY KEY,
    job            VARCHAR NOT NULL,
    started_at     TIMESTAMP NOT NULL,
    finished_at    TIMESTAMP,
    status         VARCHAR NOT NULL,      -- 'running' | 'ok' | 'failed' (or 'interrupted')
    counts         VARCHAR,               -- JSON: per-stage counts
    policy         VARCHAR,               -- JSON: the inference/alert policy used
    error          VARCHAR
);
"""

# v2: ``scores`` without its PRIMARY KEY. DuckDB keeps a key's index in memory, and the
# scores table gains a row per transaction and model version forever (30 million scores
# already outgrew a 2 GB memory limit). The key holds by construction instead: a batch
# is taken from the transactions no champion has scored, in one transaction under the
# warehouse's single-writer lock, and every insert skips ids the version already scored.
SCHEMA_V2 = """
CREATE TABLE scores_v2 (
    transaction_id VARCHAR NOT NULL,
    model_name     VARCHAR NOT NULL,
    model_version  INTEGER NOT NULL,
    role           VARCHAR NOT NULL,
    score          DOUBLE NOT NULL,
    scored_at      TIMESTAMP NOT NULL,
    run_id         VARCHAR NOT NULL
);
INSERT INTO scores_v2 SELECT * FROM scores;
DROP TABLE scores;
ALTER TABLE scores_v2 RENAME TO scores;
"""

# v3: ``scoring_state``, how far scoring has got, so a run looks for unscored rows among
# the transactions ingested since, not the whole history (a full anti-join of every
# transaction with every score grew with the warehouse: 5 s of a run at 30M rows).
SCHEMA_V3 = """
CREATE TABLE scoring_state (
    model_name     VARCHAR PRIMARY KEY,
    scored_through TIMESTAMP NOT NULL,    -- every transaction ingested at or before it has
                                          -- a champion's score of this model
    updated_at     TIMESTAMP NOT NULL,
    run_id         VARCHAR NOT NULL
);
"""

# v4: ``feature_profiles``, small sketches of each day's features and champion scores,
# written as rows are scored, so a drift report reads kilobytes (jobs/profiles.py).
SCHEMA_V4 = """
CREATE TABLE feature_profiles (
    day            DATE NOT NULL,         -- the transactions' event day
    column_name    VARCHAR NOT NULL,      -- a feature, or 'score'
    model_name     VARCHAR,               -- the score's model; NULL for features
    model_version  INTEGER,
    part           VARCHAR NOT NULL,      -- the run and batch that profiled these rows
    n              BIGINT NOT NULL,       -- rows profiled
    missing        BIGINT NOT NULL,
    sketch         VARCHAR NOT NULL,      -- JSON (reports/profile.py)
    created_at     TIMESTAMP NOT NULL
);
"""

# v5: the landing ledger tells what happened to each file: ``status`` (ingested, changed,
# reingested, set_aside), ``note`` (why a file was set aside, what changed), and the
# sha256 of the version before a change.
SCHEMA_V5 = """
ALTER TABLE ingested_files ADD COLUMN status VARCHAR DEFAULT 'ingested';
ALTER TABLE ingested_files ADD COLUMN note VARCHAR;
ALTER TABLE ingested_files ADD COLUMN previous_sha256 VARCHAR;
"""

# v6 (issue 18): analysts' dispositions. Each label keeps its ``source`` ('chargeback' for the
# labels feed and inline labels, 'disposition' for an analyst's decision); ``dispositions``
# holds every decision as made (jobs/dispositions.py), those that say nothing about fraud too.
SCHEMA_V6 = """
ALTER TABLE labels ADD COLUMN source VARCHAR DEFAULT 'chargeback';
CREATE TABLE dispositions (
    transaction_id VARCHAR NOT NULL,
    disposition    VARCHAR NOT NULL,      -- as given: confirmed_fraud, legitimate, unreachable...
    is_fraud       BOOLEAN,               -- what it says: true, false, NULL (no label)
    analyst        VARCHAR NOT NULL,
    reviewed_at    TIMESTAMP NOT NULL,
    note           VARCHAR,
    source_file    VARCHAR NOT NULL,      -- the landing file, or 'fraudwatch alerts review'
    source_row     BIGINT NOT NULL,
    ingested_at    TIMESTAMP NOT NULL
);
"""

# v7 (issue 17): keyed state for the feature sweep (jobs/keys.py): integer keys for cards and
# merchants, the amount as an exact integer, the known frauds; backfilled from transactions
# and labels here, kept by jobs.keys.assign_keys in every transaction that writes them.
SCHEMA_V7 = """
CREATE TABLE card_keys (card_id VARCHAR NOT NULL, card_key INTEGER NOT NULL);
CREATE TABLE merchant_keys (merchant_id VARCHAR NOT NULL, merchant_key INTEGER NOT NULL);
CREATE TABLE known_frauds (
    transaction_id VARCHAR NOT NULL,
    merchant_key   INTEGER,               -- NULL while the transaction is not in the warehouse
    tx_time        TIMESTAMP,             -- the transaction's event_time
    reported_at    TIMESTAMP NOT NULL,    -- a known fraud from then on
    revoked_at     TIMESTAMP              -- until then (NULL: still)
);
CREATE TABLE key_state (
    transactions         BIGINT NOT NULL, -- what the state was refreshed from
    transactions_through TIMESTAMP,       -- max(transactions.ingested_at) then
    labels               BIGINT NOT NULL,
    labels_through       TIMESTAMP,       -- max(labels.ingested_at) then
    refreshed_at         TIMESTAMP NOT NULL
);
ALTER TABLE transactions ADD COLUMN card_key INTEGER;
ALTER TABLE transactions ADD COLUMN merchant_key INTEGER;
ALTER TABLE transactions ADD COLUMN amount_e4 BIGINT;  -- amount in 1/10,000ths, exact
INSERT INTO card_keys SELECT card_id, (row_number() OVER (ORDER BY card_id) - 1)::INTEGER
FROM (SELECT DISTINCT card_id FROM transactions);
INSERT INTO merchant_keys SELECT merchant_id, (row_number() OVER (ORDER BY merchant_id) - 1)::INTEGER
FROM (SELECT DISTINCT merchant_id FROM transactions);
UPDATE transactions SET card_key = k.card_key, merchant_key = m.merchant_key,
    amount_e4 = try_cast(try_cast(transactions.amount AS DECIMAL(18, 4))::DECIMAL(38, 4) * 10000 AS BIGINT)
FROM card_keys k, merchant_keys m
WHERE k.card_id = transactions.card_id AND m.merchant_id = transactions.merchant_id;
INSERT INTO known_frauds
SELECT f.transaction_id, t.merchant_key, t.event_time, f.reported_at, NULL
FROM (SELECT transaction_id, min(reported_at) AS reported_at FROM labels WHERE is_fraud
      GROUP BY transaction_id) f
LEFT JOIN transactions t USING (transaction_id);
INSERT INTO key_state
SELECT t.n, t.through, l.n, l.through, now()::TIMESTAMP
FROM (SELECT count(*) AS n, max(ingested_at) AS through FROM transactions) t,
     (SELECT count(*) AS n, max(ingested_at) AS through FROM labels) l;
"""

# v8: a later label that contradicts a fraud label ends it (jobs.feature_sql.fraud_intervals_sql:
# the latest label reported by t is the label at t); the known frauds rewritten so (that
# statement as it was then: a migration is a snapshot).
SCHEMA_V8 = """
DELETE FROM known_frauds;
INSERT INTO known_frauds
SELECT f.transaction_id, t.merchant_key, t.event_time, f.reported_at, f.revoked_at
FROM (
    SELECT transaction_id, reported_at, lead_at AS revoked_at FROM (
        SELECT transaction_id, is_fraud, reported_at,
               lead(reported_at) OVER (PARTITION BY transaction_id ORDER BY reported_at, is_fraud)
               AS lead_at
        FROM (SELECT transaction_id, is_fraud, reported_at,
                     lag(is_fraud) OVER (PARTITION BY transaction_id
                                         ORDER BY reported_at, is_fraud) AS was_fraud
              FROM labels)
        WHERE was_fraud IS DISTINCT FROM is_fraud
    ) WHERE is_fraud
) f LEFT JOIN transactions t USING (transaction_id);
"""

# v9 (issue 15): each score carries its transaction's event time, card key and amount, so
# the performance report reads a window of scores by event time (zone maps skip the rest of
# the history) without joining millions of scores with their transactions by string id.
# Written with the score (jobs/scoring.py), backfilled here; `rebuild-keys` renumbers the
# card keys and rewrites them here too. A score whose card_key is NULL (its transaction was
# not keyed when scored) sends its window's report back to the join with transactions.
SCHEMA_V9 = """
ALTER TABLE scores ADD COLUMN event_time TIMESTAMP;
ALTER TABLE scores ADD COLUMN card_key INTEGER;
ALTER TABLE scores ADD COLUMN amount DOUBLE;
UPDATE scores SET event_time = t.event_time, card_key = t.card_key, amount = t.amount
FROM transactions t WHERE t.transaction_id = scores.transaction_id;
"""

# Each entry brings the schema from version i to i + 1. Append, never edit.
MIGRATIONS: list[str] = [
    SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, SCHEMA_V6, SCHEMA_V7, SCHEMA_V8,
    SCHEMA_V9,
]  # fmt: skip
SCHEMA_VERSION = len(MIGRATIONS)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """The block in ONE warehouse transaction: committed when it ends, rolled back (and the
    exception raised on) when anything, even an interrupt, stops it."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.TransactionException:  # a COMMIT that failed (a full disk) rolled back
            pass
        raise


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version "
        "(version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)"
    )
    row = con.execute("SELECT max(version) FROM schema_version").fetchall()[0]
    return int(row[0] or 0)


def migrate(con: duckdb.DuckDBPyConnection, extra_columns: dict[str, str] | None = None) -> int:
    """Bring the schema up to date; add the config's extra columns. Returns the version."""
    with transaction(con):
        current = schema_version(con)
        if current > SCHEMA_VERSION:
            raise FraudwatchError(
                f"the warehouse has schema version {current}, newer than this fraudwatch "
                f"understands ({SCHEMA_VERSION}): upgrade fraudwatch"
            )
        for version in range(current, SCHEMA_VERSION):
            con.execute(MIGRATIONS[version])
            con.execute("INSERT INTO schema_version VALUES (?, now()::TIMESTAMP)", [version + 1])
        if extra_columns:
            ensure_extra_columns(con, extra_columns)
    return SCHEMA_VERSION


def ensure_extra_columns(con: duckdb.DuckDBPyConnection, extra: dict[str, str]) -> None:
    """Add the config's extra columns (numeric DOUBLE, categorical VARCHAR) if missing."""
    have = {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name='transactions'"
        ).fetchall()
    }
    for name, kind in extra.items():
        if name not in have:
            sqltype = "DOUBLE" if kind == "numeric" else "VARCHAR"
            con.execute(f'ALTER TABLE transactions ADD COLUMN "{name}" {sqltype}')


def open_warehouse(
    path: Path,
    *,
    read_only: bool = False,
    extra_columns: dict[str, str] | None = None,
    memory_limit: str | None = None,
    threads: int = 0,
    lock_wait: float = 0.0,
) -> duckdb.DuckDBPyConnection:
    """Open (and on first use create and migrate) the warehouse at ``path``."""
    if read_only and not path.exists():
        raise FraudwatchError(f"no warehouse at {path} yet: run `fraudwatch ingest` first")
    make_folder(path.parent)
    con = connect(path, read_only, lock_wait)
    con.execute("SET TimeZone = 'UTC'")  # naive timestamps in the warehouse are UTC
    con.execute("SET preserve_insertion_order = false")  # every read orders explicitly
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")  # validated by config
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if not read_only:
        try:
            migrate(con, extra_columns)
        except BaseException:
            con.close()
            raise
    return con


@contextmanager
def warehouse(
    path: Path, *, read_only: bool = False, extra_columns: dict[str, str] | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_warehouse(path, read_only=read_only, extra_columns=extra_columns)
    try:
        with storage_errors(path):
            yield con
    finally:
        con.close()


def open_configured(cfg: Config, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """The deployment's warehouse with its ``[warehouse]`` settings and extra columns."""
    w = cfg.settings.warehouse
    return open_warehouse(
        cfg.warehouse_path,
        read_only=read_only,
        extra_columns=cfg.extra_columns(),
        memory_limit=w.memory_limit,
        threads=w.threads,
        lock_wait=w.lock_wait_seconds,
    )


@contextmanager
def configured_warehouse(
    cfg: Config, *, read_only: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """The warehouse for the block: a writer holds the writer lock too (re-entrant, so a
    run's stages each open and close it under the run's lock)."""
    with writer_lock(cfg.warehouse_path) if not read_only else _nothing():
        con = open_configured(cfg, read_only=read_only)
        try:
            with storage_errors(cfg.warehouse_path):
                yield con
        finally:
            con.close()


@contextmanager
def engine_warehouse(
    cfg: Config, *, read_only: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """:func:`configured_warehouse` as the configured engine wrote it: with ``[engine] kind =
    "spark"``, the Spark tables (Parquet) are temporary views named like the warehouse's
    tables (:func:`jobs.spark.tables.duckdb_views`), so the gate and the reports read them."""
    with configured_warehouse(cfg, read_only=read_only) as con:
        if cfg.settings.engine.kind == "spark":
            from jobs.spark.tables import duckdb_views

            duckdb_views(con, cfg)
        yield con


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def data_clock(con: duckdb.DuckDBPyConnection) -> datetime:
    """The latest thing the warehouse knows: an event or a label report (every window that
    ends "now" ends here, so a re-run on the same data sees the same windows)."""
    clock = con.execute(
        "SELECT greatest((SELECT max(event_time) FROM transactions), "
        "(SELECT max(reported_at) FROM labels))"
    ).fetchall()[0][0]
    if clock is None:
        raise NotEnoughData("the warehouse has no transactions yet: run `fraudwatch ingest` first")
    return clock
