"""Keyed state in the warehouse: integer keys for cards and merchants, exact amounts, and the
known frauds, so the feature sweep (:mod:`jobs.sweep`) reads integers, never string ids.

The state, all rebuildable from ``transactions`` and ``labels`` (schema v7, see
``jobs/warehouse.py``):

- ``card_keys (card_id, card_key)`` and ``merchant_keys (merchant_id, merchant_key)``: one
  dense integer (0, 1, 2, ...) per id, given in the order ids are first keyed;
- on ``transactions``: ``card_key``, ``merchant_key`` (INTEGER) and ``amount_e4`` (BIGINT:
  the amount in 1/10,000ths exactly, as :func:`jobs.feature_sql.amount_exact` rounds it; NULL
  above 10^14, which no mean counts). A row whose ``card_key`` is NULL is not keyed yet;
- ``known_frauds (transaction_id, merchant_key, tx_time, reported_at, revoked_at)``: when each
  transaction is a known fraud, derived from ``labels`` by
  :func:`jobs.feature_sql.fraud_intervals_sql` (the one statement of the label semantics every
  feature uses), with the transaction's merchant and time (NULL while the transaction is not in
  the warehouse: a chargeback can arrive before its transaction);
- ``key_state``: one row, what the state was refreshed from (the number of transactions and of
  labels, and the latest ``ingested_at`` of each). The sweep runs only while they still match
  (:func:`keys_current`), else the features take the SQL path: rows written by anything that
  did not call :func:`assign_keys` (an analyst's INSERT, a test) never give wrong features.

For the run engineer (ingest) and issue 18's labels: call :func:`assign_keys` ``(con)`` INSIDE
the write transaction, after the statements that insert or delete transactions or labels and
before COMMIT (once per transaction is enough: it keys every row lacking keys and refreshes the
known frauds of every label written since the last call, whatever its ``source``). Ingest
inserts its rows with their keys already (:func:`add_to_dictionaries`, then
:func:`keyed_values` in the INSERT): keying millions of rows after their insert, in the same
transaction, is what slows down (an UPDATE of transaction-local rows). It is
idempotent and cheap when nothing changed. :func:`rebuild_keys` (``fraudwatch warehouse
rebuild-keys``) rebuilds everything from ``transactions`` and ``labels``, and rewrites what
the scores carry of their transactions (event time, card key, amount: schema v9).

To have the features' compiled kernels loaded before the first batch is scored, a run may
call :func:`jobs.sweep.warm_up` in a thread while it ingests (``compute_features`` otherwise
overlaps it with its own target query). Scoring chunks that carry ``event_time`` beside
``transaction_id`` let the sweep find the target rows by time instead of joining every id.

Deletions (``ingest --reingest``) are found by the counts and refresh the known frauds whole
(one join of the fraud labels with ``transactions``); new rows only key themselves and the
labels written since.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from jobs.feature_sql import fraud_intervals_sql


def amount_e4_sql(column: str = "amount") -> str:
    """The amount as an exact integer of 1/10,000ths: the same rounding as
    :func:`jobs.feature_sql.amount_exact` (NULL above 10^14)."""
    return f"try_cast(try_cast({column} AS DECIMAL(18, 4))::DECIMAL(38, 4) * 10000 AS BIGINT)"


@dataclass(frozen=True)
class KeyResult:
    """What one :func:`assign_keys` (or :func:`rebuild_keys`) did."""

    rows_keyed: int  # transactions given keys
    cards_added: int  # new entries in card_keys
    merchants_added: int  # new entries in merchant_keys
    frauds_refreshed: int  # transactions whose known_frauds rows were rewritten
    whole_refresh: bool  # known_frauds rebuilt whole (rows or labels were deleted)

    def to_dict(self) -> dict[str, int | bool]:
        return dict(self.__dict__)


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> tuple:
    return tuple(con.execute(sql, params or []).fetchall()[0])


def _add_dictionary_entries(con: duckdb.DuckDBPyConnection, kind: str) -> int:
    """New ``{kind}_keys`` entries for the ids of ``fw_unkeyed`` not in the dictionary yet,
    numbered after the largest key, in id order."""
    ident, key, table = f"{kind}_id", f"{kind}_key", f"{kind}_keys"
    before = int(_one(con, f"SELECT count(*) FROM {table}")[0])
    con.execute(
        f"INSERT INTO {table} ({ident}, {key}) "
        f"SELECT {ident}, ((SELECT coalesce(max({key}), -1) FROM {table}) "
        f"+ row_number() OVER (ORDER BY {ident}))::INTEGER "
        f"FROM (SELECT DISTINCT {ident} FROM fw_unkeyed) ANTI JOIN {table} USING ({ident})"
    )
    return int(_one(con, f"SELECT count(*) FROM {table}")[0]) - before


def add_to_dictionaries(con: duckdb.DuckDBPyConnection, rows: str) -> tuple[int, int]:
    """Dictionary entries for the card and merchant ids of ``rows`` (a query with
    ``card_id`` and ``merchant_id``) that have none yet, so the rows can be inserted with
    their keys (:func:`keyed_values`) instead of keyed after. Returns the cards and merchants
    added. In the write transaction, before the insert."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE fw_unkeyed AS SELECT card_id, merchant_id FROM ({rows})"
    )
    try:
        return _add_dictionary_entries(con, "card"), _add_dictionary_entries(con, "merchant")
    finally:
        con.execute("DROP TABLE IF EXISTS temp.fw_unkeyed")


def keyed_values(alias: str) -> tuple[str, str]:
    """The joins and the values of ``card_key, merchant_key, amount_e4`` for rows ``alias``
    being inserted (their ids in the dictionaries: :func:`add_to_dictionaries`). An insert
    that keys its rows so is cheaper than keying them after: an UPDATE of rows inserted in
    the same transaction slows down past a few million (5M rows: 40-65 s, against 1 s for
    1M)."""
    return (
        f"LEFT JOIN card_keys fw_ck ON fw_ck.card_id = {alias}.card_id "
        f"LEFT JOIN merchant_keys fw_mk ON fw_mk.merchant_id = {alias}.merchant_id",
        f"fw_ck.card_key, fw_mk.merchant_key, {amount_e4_sql(f'{alias}.amount')}",
    )


def _refresh_frauds(con: duckdb.DuckDBPyConnection, ids: str | None) -> int:
    """Rewrite the ``known_frauds`` rows of the transactions ``ids`` (a query of
    ``transaction_id``), or of every transaction when None."""
    if ids is None:
        con.execute("DELETE FROM known_frauds")
        labels = "labels"
    else:
        con.execute(f"DELETE FROM known_frauds WHERE transaction_id IN ({ids})")
        labels = f"(SELECT * FROM labels WHERE transaction_id IN ({ids}))"
    before = int(_one(con, "SELECT count(*) FROM known_frauds")[0])
    con.execute(
        "INSERT INTO known_frauds (transaction_id, merchant_key, tx_time, reported_at, revoked_at) "
        "SELECT f.transaction_id, t.merchant_key, t.event_time, f.reported_at, f.revoked_at "
        f"FROM ({fraud_intervals_sql(labels)}) f LEFT JOIN transactions t USING (transaction_id)"
    )
    return int(_one(con, "SELECT count(*) FROM known_frauds")[0]) - before


def _record_state(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("DELETE FROM key_state")
    con.execute(
        "INSERT INTO key_state SELECT t.n, t.through, l.n, l.through, now()::TIMESTAMP "
        "FROM (SELECT count(*) AS n, max(ingested_at) AS through FROM transactions) t, "
        "(SELECT count(*) AS n, max(ingested_at) AS through FROM labels) l"
    )


def assign_keys(con: duckdb.DuckDBPyConnection) -> KeyResult:
    """Key every transaction lacking keys and refresh the known frauds of the labels written
    since the last call. Call it inside the transaction that wrote the rows (idempotent)."""
    state = con.execute(
        "SELECT transactions, transactions_through, labels, labels_through FROM key_state"
    ).fetchall()
    if not state:  # never recorded (cannot happen after the migration): start afresh
        return rebuild_keys(con)
    keyed_before, through, labels_before, labels_through = state[0]
    con.execute(
        "CREATE OR REPLACE TEMP TABLE fw_unkeyed AS SELECT rowid AS r, transaction_id, card_id, "
        "merchant_id, event_time, amount, ingested_at FROM transactions WHERE card_key IS NULL"
    )
    try:
        unkeyed = int(_one(con, "SELECT count(*) FROM fw_unkeyed")[0])
        # rows ingested since the last refresh, keyed by their insert (ingest) or not
        new, new_unkeyed = (
            int(v)
            for v in _one(
                con,
                "SELECT (SELECT count(*) FROM transactions WHERE ?::TIMESTAMP IS NULL "
                "OR ingested_at > ?), (SELECT count(*) FROM fw_unkeyed WHERE "
                "?::TIMESTAMP IS NULL OR ingested_at > ?)",
                [through, through, through, through],
            )
        )
        cards = merchants = 0
        if unkeyed:
            cards = _add_dictionary_entries(con, "card")
            merchants = _add_dictionary_entries(con, "merchant")
            # by rowid from a small keyed table: an UPDATE that joins rows inserted in the
            # same transaction by their ids takes ~25 s per 200k rows (DuckDB's
            # transaction-local storage), this ~1 s
            con.execute(
                "CREATE OR REPLACE TEMP TABLE fw_keyed AS SELECT u.r, k.card_key, "
                f"m.merchant_key, {amount_e4_sql('u.amount')} AS amount_e4 FROM fw_unkeyed u "
                "JOIN card_keys k USING (card_id) JOIN merchant_keys m USING (merchant_id)"
            )
            con.execute(
                "UPDATE transactions SET card_key = z.card_key, merchant_key = z.merchant_key, "
                "amount_e4 = z.amount_e4 FROM fw_keyed z WHERE transactions.rowid = z.r"
            )
            con.execute("DROP TABLE IF EXISTS temp.fw_keyed")
        total, labels_now = (
            int(v)
            for v in _one(
                con, "SELECT (SELECT count(*) FROM transactions), (SELECT count(*) FROM labels)"
            )
        )
        new_labels = int(
            _one(
                con,
                "SELECT count(*) FROM labels WHERE ?::TIMESTAMP IS NULL OR ingested_at > ?",
                [labels_through, labels_through],
            )[0]
        )
        # a deletion (or a label stamped in the past) shows in the counts: refresh whole
        expected = keyed_before + new + unkeyed - new_unkeyed
        whole = total != expected or labels_now != labels_before + new_labels
        if whole:
            refreshed = _refresh_frauds(con, None)
        else:
            refreshed = 0
            if new_labels:
                con.execute(
                    "CREATE OR REPLACE TEMP TABLE fw_new_labels AS SELECT DISTINCT transaction_id "
                    "FROM labels WHERE ?::TIMESTAMP IS NULL OR ingested_at > ?",
                    [labels_through, labels_through],
                )
                refreshed = _refresh_frauds(con, "SELECT transaction_id FROM fw_new_labels")
                con.execute("DROP TABLE IF EXISTS temp.fw_new_labels")
            orphans = int(
                _one(con, "SELECT count(*) FROM known_frauds WHERE merchant_key IS NULL")[0]
            )
            if orphans and (unkeyed or new):  # frauds reported before their transaction: now it is
                con.execute(
                    "UPDATE known_frauds SET merchant_key = t.merchant_key, tx_time = t.event_time "
                    "FROM (SELECT DISTINCT * FROM (SELECT transaction_id, event_time, "
                    "merchant_key FROM transactions WHERE ?::TIMESTAMP IS NULL OR ingested_at > ? "
                    "UNION ALL SELECT u.transaction_id, u.event_time, m.merchant_key "
                    "FROM fw_unkeyed u JOIN merchant_keys m USING (merchant_id))) t "
                    "WHERE known_frauds.merchant_key IS NULL "
                    "AND known_frauds.transaction_id = t.transaction_id",
                    [through, through],
                )
        _record_state(con)
        return KeyResult(unkeyed, cards, merchants, refreshed, whole)
    finally:
        con.execute("DROP TABLE IF EXISTS temp.fw_unkeyed")


def rebuild_keys(con: duckdb.DuckDBPyConnection) -> KeyResult:
    """Rebuild every key, exact amount and known fraud from ``transactions`` and ``labels``
    (keys numbered afresh in id order). Run it in one transaction."""
    con.execute("DELETE FROM card_keys")
    con.execute("DELETE FROM merchant_keys")
    con.execute("UPDATE transactions SET card_key = NULL, merchant_key = NULL, amount_e4 = NULL")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE fw_unkeyed AS "
        "SELECT transaction_id, card_id, merchant_id, event_time FROM transactions"
    )
    try:
        rows = int(_one(con, "SELECT count(*) FROM fw_unkeyed")[0])
        cards = _add_dictionary_entries(con, "card")
        merchants = _add_dictionary_entries(con, "merchant")
    finally:
        con.execute("DROP TABLE IF EXISTS temp.fw_unkeyed")
    con.execute(
        f"UPDATE transactions SET card_key = k.card_key, merchant_key = m.merchant_key, "
        f"amount_e4 = {amount_e4_sql('transactions.amount')} "
        "FROM card_keys k, merchant_keys m "
        "WHERE k.card_id = transactions.card_id AND m.merchant_id = transactions.merchant_id"
    )
    # what the scores carry of their transactions (schema v9): the card keys' new numbering,
    # and the copies a score written before its transaction was keyed lacks
    con.execute(
        "UPDATE scores SET event_time = t.event_time, card_key = t.card_key, amount = t.amount "
        "FROM transactions t WHERE t.transaction_id = scores.transaction_id"
    )
    refreshed = _refresh_frauds(con, None)
    _record_state(con)
    return KeyResult(rows, cards, merchants, refreshed, True)


def keys_current(con: duckdb.DuckDBPyConnection) -> bool:
    """True when the keyed state describes every transaction and label in the warehouse:
    nothing written, deleted or labelled since the last :func:`assign_keys`."""
    try:
        got = con.execute(
            "SELECT s.transactions = t.n AND s.transactions_through IS NOT DISTINCT FROM t.through "
            "AND s.labels = l.n AND s.labels_through IS NOT DISTINCT FROM l.through "
            "FROM key_state s, "
            "(SELECT count(*) AS n, max(ingested_at) AS through FROM transactions) t, "
            "(SELECT count(*) AS n, max(ingested_at) AS through FROM labels) l"
        ).fetchall()
    except duckdb.CatalogException:  # a warehouse from before the keys (read-only, unmigrated)
        return False
    return bool(got and got[0][0])
