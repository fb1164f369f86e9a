"""What the performance report keeps of each day between runs, so that a run's reports cost
the days that changed, not the window (issue 17: a run's time flat in its history).

The report reads 72 days of scores (30 matured days, the 7 since, the estimate's
calibration reference before them). Only the frauds depend on the labels, which keep
arriving for weeks; the rest of a day's figures depend on its scores alone. So:

- **kept per day and role** (a Parquet file under ``<data_dir>/cache/performance/<key>/``):
  rows and alerts per model version, the report's histogram, the estimate's bins (version,
  bin, side of the threshold, rows, mean score), the day's best cards with each one's best
  transaction, every row of its top-``k`` cards, its top-``k`` transactions. A file's name
  holds the state of its day's scores of that role (count, first and latest ``scored_at``):
  a late transaction scored into an old day, rescored rows or a deleted score rename it and
  the day is summarised again. ``<key>`` names the rest (model, role and the challenger's
  version, threshold, budget, cards kept a day, bins): the champion's days stay when a
  challenger comes; a new threshold summarises every day again, once;
- **read at every report**: the window's fraud rows (the latest label reported before
  ``as_of`` says fraud), found by their transactions' times in ``known_frauds`` (an integer
  semi-join on the scores' event time), not by joining every score's id with the labels.

The figures are those of :func:`jobs.performance_data.window_aggregates` and
:func:`jobs.estimation.window_inputs` over the whole window (what the tests compare with),
which the report reads instead when a score lacks its transaction's copies or the keyed
state is not current (:func:`jobs.keys.keys_current`). The files are a cache: a deleted
folder or a damaged file only costs the next report time (a week of days at a time); files
unused for a week are deleted. The estimate drawn from each day is kept apart, in
``<data_dir>/cache/estimates/`` (:mod:`jobs.estimate_cache`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from jobs import logs
from jobs.estimation import BIN_SQL, Columns, EstimationPlan
from jobs.keys import keys_current
from jobs.performance_data import (
    LATEST_LABELS,
    REPORT_BIN,
    TOP_K,
    WINDOW,
    Aggregates,
    _frame,
    _scores_carry_rows,
    kept_cards,
    scored_window,
    top_cards,
)
from jobs.reporting import fingerprint

log = logs.get("reports")

FORMAT = 1  # of the kept files: a change here makes a new key
KEPT_FOR = 7 * 86400  # seconds a file or key folder is kept unused
SUMMARISED_AT_ONCE = 7  # days: the first report's memory is a week's rows, not the window's
WHERE = "(s.role = 'champion' OR (s.role = 'challenger' AND s.model_version = ?))"
DAYS, FRAUDS, FRAUD_IDS = "fw_days", "fw_frauds", "fw_fraud_ids"  # temp tables
COLUMNS = (
    "day DATE, champion BOOLEAN, kind VARCHAR, model_version INTEGER, bin INTEGER, "
    "above BOOLEAN, n BIGINT, alerts BIGINT, mean DOUBLE, card INTEGER, card_id VARCHAR, "
    "score DOUBLE, transaction_id VARCHAR, amount DOUBLE"
)
IS_FRAUD = f"transaction_id IN (SELECT transaction_id FROM {FRAUD_IDS})"


@dataclass(frozen=True)
class DaysPlan:
    """The report's rows: the model's champion scores and its challenger's (``challenger``:
    its version, None without one) of the event days ``[start, end)``; the alert policy; the
    report window's length in days (how many best-scored cards a day keeps)."""

    model_name: str
    challenger: int | None
    threshold: float
    k: int
    window_days: int
    start: datetime
    end: datetime

    @property
    def cards(self) -> int:
        return kept_cards(self.k, self.window_days)

    def parts(self) -> list[tuple[bool, str, list[Any]]]:
        """Each role's rows, kept apart (a new challenger leaves the champion's days as
        they are): (champion, the rows' predicate on ``scores s``, its parameters)."""
        parts: list[tuple[bool, str, list[Any]]] = [(True, "s.role = 'champion'", [])]
        if self.challenger is not None:
            where = "s.role = 'challenger' AND s.model_version = ?"
            parts.append((False, where, [self.challenger]))
        return parts

    def key(self, champion: bool) -> str:
        return fingerprint(
            {
                "format": FORMAT,
                "model": self.model_name,
                "rows": "champion" if champion else f"challenger v{self.challenger}",
                "threshold": self.threshold,
                "k": self.k,
                "cards": self.cards,
                "bins": [REPORT_BIN, BIN_SQL],
            }
        )


def usable(con: duckdb.DuckDBPyConnection, plan: DaysPlan) -> bool:
    """True when the plan's days can be kept: the scores carry their transaction's rows and
    ``known_frauds`` describes every label."""
    return _scores_carry_rows(con, plan.model_name, plan.start, plan.end) and keys_current(con)


def _states(con: duckdb.DuckDBPyConnection, plan: DaysPlan) -> dict[tuple[bool, date], str]:
    """Each role's and event day's state of the plan's scores: count, first and latest
    ``scored_at`` (one scan of the window's times and roles)."""
    rows = con.execute(
        "SELECT s.role = 'champion', s.event_time::DATE, count(*), min(s.scored_at), "
        f"max(s.scored_at) FROM scores s WHERE s.model_name = ? AND {WHERE} "
        "AND s.event_time >= ? AND s.event_time < ? GROUP BY 1, 2",
        [plan.model_name, plan.challenger, plan.start, plan.end],
    ).fetchall()
    return {(c, day): fingerprint([n, first, latest]) for c, day, n, first, latest in rows}


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


@contextmanager
def kept_days(
    con: duckdb.DuckDBPyConnection, folder: Path, plan: DaysPlan, as_of: datetime | None
) -> Iterator[None]:
    """The plan's days in the temp table ``fw_days`` (read from ``folder``'s files, the days
    whose scores changed summarised and written there) and its fraud rows as of ``as_of``
    in ``fw_frauds``; both dropped on the way out."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {DAYS} ({COLUMNS})")
    try:
        states = _states(con, plan)
        for champion, where, params in plan.parts():
            key = folder / plan.key(champion)
            files = {
                day: key / f"{day:%Y-%m-%d}-{state}.parquet"
                for (role, day), state in states.items()
                if role == champion
            }
            kept = _read(con, champion, [p for p in files.values() if p.exists()])
            missing = sorted(day for day, p in files.items() if p not in kept)
            writable = True
            for i in range(0, len(missing), SUMMARISED_AT_ONCE):
                days = missing[i : i + SUMMARISED_AT_ONCE]
                _summarise(con, plan, champion, (where, params), days)
                writable = writable and _write(con, key, champion, {d: files[d] for d in days})
            if writable:
                _tidy(key, kept)
            logs.event(
                log, "performance days", "debug", champion=champion, kept=len(kept),
                summarised=len(missing),
            )  # fmt: skip
        _fraud_rows(con, plan, as_of)
        yield
    finally:
        temps = ("fw_fraud_times", "fw_fraud_rows")
        for table in (DAYS, FRAUDS, FRAUD_IDS, *temps):
            con.execute(f"DROP TABLE IF EXISTS temp.{table}")


def _read(con: duckdb.DuckDBPyConnection, champion: bool, paths: list[Path]) -> list[Path]:
    """A role's kept files into ``fw_days``: the files read, none if one cannot be (they
    are deleted, and their days summarised again)."""
    if not paths:
        return []
    try:
        con.execute(
            f"INSERT INTO {DAYS} BY NAME SELECT * FROM read_parquet("
            f"[{', '.join(_quoted(p) for p in paths)}])"
        )
    except duckdb.Error as exc:
        logs.event(log, "performance days unreadable; summarised again", "warning", error=str(exc))
        con.execute(f"DELETE FROM {DAYS} WHERE champion = ?", [champion])
        for path in paths:
            path.unlink(missing_ok=True)
        return []
    return paths


def _summarise(
    con: duckdb.DuckDBPyConnection,
    plan: DaysPlan,
    champion: bool,
    rows: tuple[str, list[Any]],
    days: list[date],
) -> None:
    """The label-free summaries of a role's ``rows`` (a predicate on ``scores s`` and its
    parameters) of ``days`` (see the module's docstring) into ``fw_days``."""
    with scored_window(
        con,
        model_name=plan.model_name,
        where=rows[0],
        params=rows[1],
        start=datetime.combine(days[0], datetime.min.time()),
        end=datetime.combine(days[-1] + timedelta(days=1), datetime.min.time()),
        labels=False,
        days=days,
    ):
        add = f"INSERT INTO {DAYS} BY NAME "
        con.execute(
            add + "SELECT day, champion, 'count' AS kind, model_version, count(*) AS n, "
            f"count(*) FILTER (WHERE score >= ?) AS alerts FROM {WINDOW} GROUP BY ALL",
            [plan.threshold],
        )
        con.execute(
            add + f"SELECT day, champion, 'rbin' AS kind, {REPORT_BIN} AS bin, count(*) AS n "
            f"FROM {WINDOW} GROUP BY ALL"
        )
        con.execute(
            add + f"SELECT day, champion, 'ebin' AS kind, model_version, {BIN_SQL} AS bin, "
            f"score >= ? AS above, count(*) AS n, avg(score) AS mean FROM {WINDOW} GROUP BY ALL",
            [plan.threshold],
        )
        top_cards(con, "true", [], plan.cards)
        # each best card's best transaction: the lowest id among its ties (all in fw_top)
        con.execute(
            add + "SELECT b.day, ? AS champion, 'best' AS kind, b.card, b.card_id, "
            "b.score, min(p.transaction_id) AS transaction_id, "
            "arg_min(p.amount, p.transaction_id) AS amount FROM fw_best b JOIN fw_top p "
            "ON p.day = b.day AND p.card = b.card AND p.score = b.score "
            "GROUP BY b.day, b.card, b.card_id, b.score",
            [champion],
        )
        con.execute(
            add + f"SELECT day, ? AS champion, 'top' AS kind, score, transaction_id "
            f"FROM fw_top {TOP_K}",
            [champion, plan.k],
        )
        if not champion:
            return
        # every champion row of each day's top-k cards (the estimate's card figures): the
        # first k of its best cards, in top_cards' order
        con.execute(
            "CREATE OR REPLACE TEMP TABLE fw_top AS SELECT f.day, f.model_version, b.card_id, "
            f"f.score, f.score_row FROM {WINDOW} f JOIN (SELECT * FROM fw_best QUALIFY "
            "row_number() OVER (PARTITION BY day ORDER BY score DESC, card_id) <= ?) b "
            "ON b.day = f.day AND b.card = f.card",
            [plan.k],
        )
        con.execute(
            add + "SELECT x.day, true AS champion, 'kcard' AS kind, x.model_version, "
            "x.card_id, x.score, s.transaction_id FROM fw_top x JOIN (SELECT rowid AS "
            "score_row, transaction_id FROM scores WHERE rowid IN (SELECT score_row FROM "
            "fw_top)) s USING (score_row)"
        )


def _write(
    con: duckdb.DuckDBPyConnection, key: Path, champion: bool, new: dict[date, Path]
) -> bool:
    """Write a role's newly summarised days to their files (each whole or not at all) and
    delete their days' older files. A folder that cannot be written costs the next report
    the same work, nothing else: False, with a warning."""
    try:
        key.mkdir(parents=True, exist_ok=True)
        for day, path in new.items():
            part = path.with_name(f".{path.name}.{os.getpid()}")
            con.execute(
                f"COPY (SELECT * FROM {DAYS} WHERE day = DATE '{day:%Y-%m-%d}' "
                f"AND champion = {champion}) "
                f"TO {_quoted(part)} (FORMAT parquet)"
            )
            os.replace(part, path)
            for old in key.glob(f"{day:%Y-%m-%d}-*.parquet"):
                if old != path:
                    old.unlink(missing_ok=True)
    except (OSError, duckdb.Error) as exc:
        logs.event(
            log,
            "performance days not kept; the next report summarises them again",
            "warning",
            folder=str(key),
            error=str(exc),
        )
        return False
    return True


def _tidy(key: Path, used: list[Path], what: str = "performance days") -> None:
    """Mark the files read as used, and delete the files and key folders unused for a week
    (``what``: the files, for the log)."""
    if not key.is_dir():
        return  # nothing kept
    try:
        for path in [*used, key]:
            os.utime(path)
        stale = time.time() - KEPT_FOR
        for entry in [*key.parent.iterdir(), *key.iterdir()]:
            if entry.stat().st_mtime < stale:
                _remove(entry)
    except OSError as exc:
        logs.event(log, f"{what} not tidied", "warning", error=str(exc))


def _remove(entry: Path) -> None:
    if entry.is_dir():
        for child in entry.iterdir():
            child.unlink(missing_ok=True)
        entry.rmdir()
    else:
        entry.unlink(missing_ok=True)


def _fraud_rows(con: duckdb.DuckDBPyConnection, plan: DaysPlan, as_of: datetime | None) -> None:
    """The plan's scores whose transaction's latest label (reported before ``as_of``) says
    fraud, into ``fw_frauds``: the candidates are the scores at the event times of those
    transactions (``known_frauds``), read in one scan filtered by those times."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {FRAUD_IDS} AS SELECT transaction_id "
        f"FROM {LATEST_LABELS} l WHERE is_fraud",
        [as_of, as_of],
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE fw_fraud_times AS SELECT DISTINCT tx_time FROM "
        "known_frauds WHERE tx_time >= ? AND tx_time < ? AND transaction_id IN "
        f"(SELECT transaction_id FROM {FRAUD_IDS})",
        [plan.start, plan.end],
    )
    # one scan, the event times as its filter (DuckDB pushes them into the scan as a Bloom
    # filter): 0.6 s for 486k candidates among 72M scores, against 1.1-1.5 s for the row ids
    # first and then a join on them; the ids are checked in a statement of their own, since
    # in the same one DuckDB plans the join on the ids first (1.8-2.0 s against 1.1-1.2 s)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE fw_fraud_rows AS SELECT s.event_time::DATE AS day, "
        "s.role = 'champion' AS champion, s.model_version, s.card_key AS card, s.amount, "
        "s.score, s.transaction_id FROM scores s WHERE s.event_time >= ? AND s.event_time < ? "
        f"AND s.event_time IN (SELECT tx_time FROM fw_fraud_times) AND s.model_name = ? AND {WHERE}",
        [plan.start, plan.end, plan.model_name, plan.challenger],
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {FRAUDS} AS SELECT * EXCLUDE (transaction_id) "
        f"FROM fw_fraud_rows WHERE {IS_FRAUD}"
    )


def aggregates(
    con: duckdb.DuckDBPyConnection, plan: DaysPlan, *, champion: bool, start: date, end: date
) -> Aggregates | None:
    """:func:`jobs.performance_data.window_aggregates` of the role's rows of the days
    ``[start, end)``, from the kept days and the fraud rows; None when it has none."""
    rows = "champion = ? AND day >= ? AND day < ?"
    p: list[Any] = [champion, start, end]
    version = con.execute(
        f"SELECT model_version FROM {DAYS} WHERE kind = 'count' AND {rows} "
        "GROUP BY 1 ORDER BY sum(n) DESC, 1 DESC LIMIT 1",
        p,
    ).fetchall()
    if not version:
        return None
    t = plan.threshold
    day_stats = _frame(
        con,
        f"WITH c AS (SELECT day, sum(n)::BIGINT AS n, sum(alerts)::BIGINT AS alerts "
        f"FROM {DAYS} WHERE kind = 'count' AND {rows} GROUP BY day), "
        "f AS (SELECT day, count(*) AS frauds, count(*) FILTER (WHERE score >= ?) AS tp, "
        "sum(amount) FILTER (WHERE score >= ?) AS caught, "
        f"sum(amount) FILTER (WHERE score < ?) AS missed FROM {FRAUDS} WHERE {rows} "
        "GROUP BY day) "
        "SELECT day, n, coalesce(frauds, 0) AS frauds, alerts, coalesce(tp, 0) AS tp, "
        "alerts - coalesce(tp, 0) AS fp, coalesce(caught, 0) AS amount_caught, "
        "coalesce(missed, 0) AS amount_missed FROM c LEFT JOIN f USING (day) ORDER BY day",
        [*p, t, t, t, *p],
    )
    bins = _frame(
        con,
        f"SELECT day, bin, n, coalesce(frauds, 0) AS frauds FROM (SELECT day, bin, "
        f"sum(n)::BIGINT AS n FROM {DAYS} WHERE kind = 'rbin' AND {rows} GROUP BY ALL) "
        f"LEFT JOIN (SELECT day, {REPORT_BIN} AS bin, count(*) AS frauds FROM {FRAUDS} "
        f"WHERE {rows} GROUP BY ALL) USING (day, bin) ORDER BY day, bin",
        [*p, *p],
    )
    cards = _frame(
        con,
        f"WITH b AS (SELECT * FROM {DAYS} WHERE kind = 'best' AND {rows} QUALIFY "
        "row_number() OVER (PARTITION BY day ORDER BY score DESC, card_id) <= ?), "
        f"f AS (SELECT DISTINCT day, card FROM {FRAUDS} WHERE {rows}) "
        "SELECT b.day, b.card_id, b.score, f.card IS NOT NULL AS card_fraud, "
        f"b.transaction_id, b.{IS_FRAUD} AS is_fraud, b.amount "
        "FROM b LEFT JOIN f ON f.day = b.day AND f.card = b.card ORDER BY b.day, b.card_id",
        [*p, kept_cards(plan.k, day_stats.height), *p],
    )
    top = _frame(
        con,
        f"SELECT day, score, {IS_FRAUD} AS is_fraud FROM {DAYS} WHERE kind = 'top' AND "
        f"{rows} ORDER BY day, score DESC, transaction_id",
        p,
    )
    return Aggregates(int(version[0][0]), day_stats, bins, cards, top)


def estimation_inputs(
    con: duckdb.DuckDBPyConnection, plan: DaysPlan, estimate: EstimationPlan
) -> tuple[Columns, Columns]:
    """:func:`jobs.estimation.window_inputs` from the kept days and the fraud rows."""
    first = (estimate.rows_from or estimate.start).date()
    bins = con.execute(
        "SELECT e.day, e.model_version, e.bin, e.above, e.n, e.mean, "
        f"coalesce(f.frauds, 0) AS frauds FROM (SELECT * FROM {DAYS} WHERE kind = 'ebin' "
        "AND champion AND day >= ? AND day < ?) e LEFT JOIN (SELECT day, model_version, "
        f"{BIN_SQL} AS bin, score >= ? AS above, count(*) AS frauds FROM {FRAUDS} "
        "WHERE champion GROUP BY ALL) f USING (day, model_version, bin, above) "
        "ORDER BY 1, 2, 3, 4",
        [first, estimate.end.date(), plan.threshold],
    ).fetchnumpy()
    cards = con.execute(
        f"SELECT day, card_id, score, model_version, {IS_FRAUD} AS is_fraud FROM {DAYS} "
        "WHERE kind = 'kcard' AND day >= ? AND day < ? ORDER BY day, card_id, score",
        [estimate.start.date(), estimate.end.date()],
    ).fetchnumpy()
    return bins, cards
