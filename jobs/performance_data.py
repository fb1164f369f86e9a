"""The performance report's inputs, reduced in the warehouse to a few thousand rows.

A window of matured labels holds millions of scored transactions at scale;
DuckDB reads them from ``scores`` by event time (each score carries its
transaction's event time, card key and amount) and reduces them once into a
temp table and four small frames (per-day figures, a per-day score histogram,
each day's best-scored cards, each day's top transactions) that
:mod:`reports.aggregated` turns into metrics. No row of the window is ever
loaded into Python.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import duckdb
import polars as pl

from reports.aggregated import BINS, BUDGET_FACTORS


@dataclass(frozen=True)
class Aggregates:
    version: int  # the version that served most of the window
    day_stats: pl.DataFrame
    bins: pl.DataFrame
    cards: pl.DataFrame
    top: pl.DataFrame


def _frame(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> pl.DataFrame:
    frame = pl.from_arrow(con.sql(sql, params=params or None).to_arrow_table())
    assert isinstance(frame, pl.DataFrame)
    return frame


LATEST_LABELS = (
    "(SELECT transaction_id, arg_max(is_fraud, reported_at) AS is_fraud FROM labels "
    "WHERE ?::TIMESTAMP IS NULL OR reported_at < ? GROUP BY transaction_id)"
)

WINDOW = "fw_window"  # the temp table of one window's scored rows (see scored_window)
REPORT_BIN = f"least(floor(score * {BINS}), {BINS - 1})::INTEGER"  # the report's histogram
# each day's k (the parameter) best-scored rows, score ties by transaction id
TOP_K = "QUALIFY row_number() OVER (PARTITION BY day ORDER BY score DESC, transaction_id) <= ?"


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    """The column names of ``table`` (a warehouse table, or a view over Spark's tables)."""
    return {d[0] for d in con.execute(f"SELECT * FROM {table} LIMIT 0").description}


def _card_column(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> str:
    """The card of a window row: its integer key (warehouse v7 keys every transaction) when
    every transaction of the window has one, its id otherwise."""
    if "card_key" not in _columns(con, "transactions"):
        return "t.card_id"
    unkeyed = con.execute(
        "SELECT count(*) FROM transactions WHERE card_key IS NULL AND event_time >= ? "
        "AND event_time < ?",
        [start, end],
    ).fetchall()[0][0]
    return "t.card_id" if unkeyed else "t.card_key"


def _scored_since(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> Any:
    """A lower bound of when the window's transactions were scored: a day before the first
    of them was ingested (scoring writes a transaction's scores after its ingest, both on
    the wall clock; the day allows for a clock set back), so the join reads the scores of
    the window's time rather than of the whole history (scores are appended in time order:
    their zone maps skip the rest). None (no bound) for a warehouse without those columns."""
    if not {"scored_at", "ingested_at"} <= _columns(con, "scores") | _columns(con, "transactions"):
        return None
    return con.execute(
        "SELECT min(ingested_at) - INTERVAL 1 DAY FROM transactions "
        "WHERE event_time >= ? AND event_time < ?",
        [start, end],
    ).fetchall()[0][0]


def _scores_carry_rows(
    con: duckdb.DuckDBPyConnection, model_name: str, start: datetime, end: datetime
) -> bool:
    """True when the window can be read from ``scores`` alone: they carry their transaction's
    event time, card key and amount (schema v9), and none of this model's that may fall in
    the window lacks them (scored before its transaction was keyed, or written by hand)."""
    if not {"event_time", "card_key", "amount"} <= _columns(con, "scores"):
        return False
    lacking = con.execute(
        "SELECT count(*) FROM scores WHERE model_name = ? AND (card_key IS NULL "
        "OR amount IS NULL) AND (event_time IS NULL OR (event_time >= ? AND event_time < ?))",
        [model_name, start, end],
    ).fetchall()[0][0]
    return not lacking


@contextmanager
def scored_window(
    con: duckdb.DuckDBPyConnection,
    *,
    model_name: str,
    where: str,
    params: list[Any],
    start: datetime,
    end: datetime,
    as_of: datetime | None = None,
    labels: bool = True,
    days: list[date] | None = None,
) -> Iterator[str]:
    """The window's scores matching ``where`` (on ``scores s``) with their latest labels
    (reported before ``as_of``; all without it) in a temp table (day, champion: the score's
    role, model_version, card: the card's integer key, amount, score, score_row: the score's
    rowid, is_fraud), dropped on the way out. The performance aggregates and the estimation
    read it; ids are fetched only for the few rows that show them (:func:`top_cards`).
    Without ``labels`` every ``is_fraud`` is false and no label is read (what
    :mod:`jobs.performance_days` keeps of a day does not depend on them); ``days`` keeps only
    those event days of the window.

    The scores carry their transaction's event time, card key and amount (schema v9): the
    window is read from them by event time (their zone maps skip the rest of the history),
    joined with the labels only. Without those copies (a warehouse on Spark's tables, a
    score written before its transaction was keyed) the scores are joined with their
    transactions, reading the scores written since the window was ingested."""
    con.execute(f"DROP TABLE IF EXISTS temp.{WINDOW}")
    try:
        if _scores_carry_rows(con, model_name, start, end):
            rows, t, card, since = "scores s", "s", "s.card_key", None
        else:
            rows, t = "scores s JOIN transactions t USING (transaction_id)", "t"
            card, since = _card_column(con, start, end), _scored_since(con, start, end)
        label = "coalesce(l.is_fraud, false)" if labels else "false"
        joined = f" LEFT JOIN {LATEST_LABELS} l USING (transaction_id)" if labels else ""
        con.execute(
            f"CREATE TEMP TABLE {WINDOW} AS "
            f"SELECT {t}.event_time::DATE AS day, s.role = 'champion' AS champion, "
            f"s.model_version, {card} AS card, {t}.amount, s.score, s.rowid AS score_row, "
            f"{label} AS is_fraud FROM {rows}{joined} "
            f"WHERE s.model_name = ? AND {where} AND {t}.event_time >= ? AND {t}.event_time < ?"
            + (" AND s.scored_at >= ?" if since is not None else "")
            + (f" AND {t}.event_time::DATE IN (SELECT unnest(?::DATE[]))" if days else ""),
            ([as_of, as_of] if labels else [])
            + [model_name, *params, start, end]
            + ([since] if since is not None else [])
            + ([days] if days else []),
        )
        yield WINDOW
    finally:
        for table in (WINDOW, "fw_cut", "fw_top", "fw_best"):
            con.execute(f"DROP TABLE IF EXISTS temp.{table}")


def kept_cards(k: int, days: int) -> int:
    """The best-scored cards a day needs: for card precision@k over ``days`` days (cards
    caught on an earlier day are skipped, at most ``k`` a day) and the sweep's largest
    budget."""
    return max(int(k * max(BUDGET_FACTORS)), k * (days + 1))


def top_cards(con: duckdb.DuckDBPyConnection, rows: str, params: list[Any], limit: int) -> None:
    """Each day's ``limit`` best-scored cards among the window table's ``rows`` (a
    predicate with ``params``), into the temp table ``fw_best`` (day, card, card_id, score =
    the card's best that day; ranked by score then card id), and the day's top transactions
    into ``fw_top`` (the window's columns, with card_id and transaction_id). Taken from the
    top transactions, not from a group-by of every card and day: the cards of a day's ``m``
    best-scored transactions (ties at the ``m``-th score included) hold its ``limit`` best
    cards with all their best transactions, once they are ``limit`` distinct cards or all
    the day's rows; ``m`` grows until every day is so. Both tables go with
    :func:`scored_window`'s."""
    w = f"(SELECT * FROM {WINDOW} WHERE {rows})"
    m = max(4 * limit, 64)
    while True:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE fw_cut AS SELECT day, "
            f"list_min(max(score, {m})) AS floor, count(*) AS n FROM {w} GROUP BY day",
            params,
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE fw_top AS SELECT x.* "
            f"FROM {w} x JOIN fw_cut c USING (day) WHERE x.score >= c.floor",
            params,
        )
        short = con.execute(
            "SELECT count(*) FROM (SELECT day, count(*) AS r, count(DISTINCT card) AS cards "
            "FROM fw_top GROUP BY day) JOIN fw_cut USING (day) WHERE cards < ? AND r < n",
            [limit],
        ).fetchall()[0][0]
        if not short:
            break
        m *= 4
    keyed = con.execute(f"SELECT typeof(card) <> 'VARCHAR' FROM {WINDOW} LIMIT 1").fetchall()
    card_id = (
        "(SELECT card_id FROM card_keys k WHERE k.card_key = x.card)"
        if keyed and keyed[0][0]
        else "x.card"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE fw_top AS SELECT x.*, {card_id} AS card_id, "
        "s.transaction_id FROM fw_top x JOIN (SELECT rowid AS score_row, transaction_id "
        "FROM scores WHERE rowid IN (SELECT score_row FROM fw_top)) s USING (score_row)"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE fw_best AS SELECT day, card, card_id, max(score) AS score "
        "FROM fw_top GROUP BY day, card, card_id QUALIFY row_number() OVER "
        "(PARTITION BY day ORDER BY max(score) DESC, card_id) <= ?",
        [limit],
    )


def window_aggregates(
    con: duckdb.DuckDBPyConnection, *, rows: str, params: list[Any], threshold: float, k: int
) -> Aggregates | None:
    """The aggregates of the window table's ``rows`` (a predicate with ``params``), or None
    when it has none."""
    w = f"(SELECT * FROM {WINDOW} WHERE {rows})"
    row = con.execute(
        f"SELECT model_version FROM {w} GROUP BY 1 ORDER BY count(*) DESC, 1 DESC LIMIT 1",
        params,
    ).fetchall()
    if not row:
        return None
    day_stats = _frame(
        con,
        "SELECT day, count(*) AS n, count(*) FILTER (WHERE is_fraud) AS frauds, "
        "count(*) FILTER (WHERE score >= ?) AS alerts, "
        "count(*) FILTER (WHERE is_fraud AND score >= ?) AS tp, "
        "count(*) FILTER (WHERE NOT is_fraud AND score >= ?) AS fp, "
        "coalesce(sum(amount) FILTER (WHERE is_fraud AND score >= ?), 0) AS amount_caught, "
        "coalesce(sum(amount) FILTER (WHERE is_fraud AND score < ?), 0) AS amount_missed "
        f"FROM {w} GROUP BY day ORDER BY day",
        [threshold] * 5 + params,
    )
    bins = _frame(
        con,
        f"SELECT day, {REPORT_BIN} AS bin, "
        f"count(*) AS n, count(*) FILTER (WHERE is_fraud) AS frauds FROM {w} GROUP BY ALL",
        params,
    )
    top_cards(con, rows, params, kept_cards(k, day_stats.height))
    # the card's best transaction (the lowest id among its ties, all in fw_top); whether the
    # card had a fraud that day (any of its transactions: from the window's few fraud rows)
    cards = _frame(
        con,
        f"WITH frauds AS (SELECT DISTINCT day, card FROM {w} WHERE is_fraud) "
        "SELECT b.day, b.card_id, b.score, any_value(f.card IS NOT NULL) AS card_fraud, "
        "min(p.transaction_id) AS transaction_id, "
        "arg_min(p.is_fraud, p.transaction_id) AS is_fraud, "
        "arg_min(p.amount, p.transaction_id) AS amount "
        "FROM fw_best b JOIN fw_top p ON p.day = b.day AND p.card = b.card "
        "AND p.score = b.score "
        "LEFT JOIN frauds f ON f.day = b.day AND f.card = b.card "
        "GROUP BY b.day, b.card_id, b.score",
        params,
    )
    # each day's k best-scored transactions (ties by id): all among the day's fw_top rows
    top = _frame(
        con,
        f"SELECT day, score, is_fraud FROM fw_top {TOP_K} ORDER BY day, score DESC, transaction_id",
        [k],
    )
    return Aggregates(int(row[0][0]), day_stats, bins, cards, top)


def aggregates(
    con: duckdb.DuckDBPyConnection,
    *,
    model_name: str,
    where: str,
    params: list[Any],
    start: datetime,
    end: datetime,
    threshold: float,
    k: int,
    as_of: datetime | None = None,
) -> Aggregates | None:
    """The window's aggregates for the scores matching ``where`` (on ``scores s``), with the
    labels reported before ``as_of`` (all without it), or None when the window has none."""
    with scored_window(
        con, model_name=model_name, where=where, params=params, start=start, end=end, as_of=as_of
    ):
        return window_aggregates(con, rows="true", params=[], threshold=threshold, k=k)


@dataclass(frozen=True)
class ReviewDay:
    """One alert day: what analysts decided, and (once the day's labels matured) what the
    chargebacks said about the same alerts."""

    day: Any  # datetime.date
    alerts: int  # alerted transactions (once each, whatever the channels)
    confirmed: int
    cleared: int
    other: int  # decided neither way (unreachable)
    matured: bool  # the day's labels have matured
    charged_back: int  # alerts whose latest chargeback label says fraud (as of the report)

    @property
    def pending(self) -> int:
        return self.alerts - self.confirmed - self.cleared - self.other

    @property
    def review_precision(self) -> float | None:
        """Alert precision from dispositions: confirmed among the alerts decided."""
        decided = self.confirmed + self.cleared
        return self.confirmed / decided if decided else None

    @property
    def label_precision(self) -> float | None:
        """Alert precision from chargebacks: frauds among the alerts, once matured."""
        return self.charged_back / self.alerts if self.matured and self.alerts else None


def review_days(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, matured: datetime,
    as_of: datetime | None,
) -> list[ReviewDay]:  # fmt: skip
    """Per alert day in ``[start, end)``: the latest decision per alerted transaction, and the
    latest chargeback label reported before ``as_of`` (days before ``matured`` have matured)."""
    from jobs.alert_reviews import LABEL_SOURCE, LATEST

    rows = con.execute(
        f"""
        WITH a AS (SELECT transaction_id, any_value(alert_day) AS day FROM alerts
                   WHERE alert_day >= ?::DATE AND alert_day < ?::DATE GROUP BY 1),
        c AS (SELECT transaction_id, arg_max(is_fraud, reported_at) AS fraud FROM labels
              WHERE source <> ? AND (?::TIMESTAMP IS NULL OR reported_at < ?)
                AND transaction_id IN (SELECT transaction_id FROM a) GROUP BY 1)
        SELECT a.day, count(*), count(*) FILTER (WHERE d.is_fraud),
               count(*) FILTER (WHERE NOT d.is_fraud),
               count(*) FILTER (WHERE d.transaction_id IS NOT NULL AND d.is_fraud IS NULL),
               count(*) FILTER (WHERE c.fraud)
        FROM a LEFT JOIN ({LATEST}) d USING (transaction_id) LEFT JOIN c USING (transaction_id)
        GROUP BY 1 ORDER BY 1
        """,
        [start, end, LABEL_SOURCE, as_of, as_of],
    ).fetchall()
    return [
        ReviewDay(day, int(n), int(k), int(x), int(o), day < matured.date(), int(cb))
        for day, n, k, x, o, cb in rows
    ]
