"""Estimated performance for the days whose labels have not matured (issue 18): the
warehouse reduces the champion's scores to narrow score bins and each day's top-``k``
cards, the versions' calibrators (verified, from the registry) turn scores into
probabilities, and :mod:`reports.estimation` draws the metrics from them.

Bins are ``floor(sqrt(score) * 1000)`` (fine where most transactions are, near 0) split
at the alert threshold; a bin's probability is its calibrator's at the bin's mean score.
Scores of a version without a calibrator (trained before calibration existed) are left
out; a day left with none is not estimated.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

import duckdb
import numpy as np

from jobs.calibration import load_calibrator
from jobs.config import Config
from jobs.performance_data import LATEST_LABELS
from reports.estimation import DayInput, EstimationSummary, estimate_day, summarise

if TYPE_CHECKING:
    from registry import Registry
    from reports.calibration import Calibrator

BINS = 1000


def _load(
    con: duckdb.DuckDBPyConnection, name: str, start: datetime, end: datetime, as_of: datetime
) -> None:
    con.execute("DROP TABLE IF EXISTS temp.fw_est")
    con.execute(
        "CREATE TEMP TABLE fw_est AS "
        "SELECT t.event_time::DATE AS day, t.card_id, s.score, s.model_version, "
        "coalesce(l.is_fraud, false) AS is_fraud "
        "FROM scores s JOIN transactions t USING (transaction_id) "
        f"LEFT JOIN {LATEST_LABELS} l USING (transaction_id) "
        "WHERE s.model_name = ? AND s.role = 'champion' AND t.event_time >= ? "
        "AND t.event_time < ?",
        [as_of, as_of, name, start, end],
    )


def estimate_performance(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    reg: Registry,
    *,
    start: datetime,
    end: datetime,
    matured: date,
    as_of: datetime,
    trained_through: date | None = None,
) -> EstimationSummary | None:
    """Estimates for the event days in ``[start, end)`` (days before ``matured`` also get
    their realised figures from the labels reported before ``as_of``; days up to
    ``trained_through``, the champion's training window, are shown but neither held to
    their realised figure nor used as the reference); None when no day has calibrated
    scores."""
    s = cfg.settings
    k = s.alerts.daily_budget
    _load(con, cfg.settings.model.name, start, end, as_of)
    try:
        bins = con.execute(
            f"SELECT day, model_version, least(floor(sqrt(greatest(score, 0)) * {BINS}), "
            f"{BINS - 1})::INTEGER AS bin, score >= ? AS above, count(*), avg(score), "
            "count(*) FILTER (WHERE is_fraud) FROM fw_est GROUP BY ALL ORDER BY 1, 2, 3, 4",
            [s.alerts.threshold],
        ).fetchall()
        cards = con.execute(
            "WITH best AS (SELECT day, card_id FROM fw_est GROUP BY day, card_id QUALIFY "
            "row_number() OVER (PARTITION BY day ORDER BY max(score) DESC, card_id) <= ?) "
            "SELECT f.day, f.card_id, f.score, f.model_version, f.is_fraud "
            "FROM fw_est f SEMI JOIN best b ON b.day = f.day AND b.card_id = f.card_id "
            "ORDER BY f.day, f.card_id, f.score",
            [k],
        ).fetchall()
    finally:
        con.execute("DROP TABLE IF EXISTS temp.fw_est")
    calibrators: dict[int, Calibrator | None] = {}
    for v in sorted({int(r[1]) for r in bins}):
        calibrators[v] = load_calibrator(reg, s.model.name, v)
    days = []
    for day in sorted({r[0] for r in bins}):
        rows = [r for r in bins if r[0] == day and calibrators.get(int(r[1])) is not None]
        if not rows:
            continue
        mean_score = np.array([float(r[5]) for r in rows])
        p = np.array(
            [float(calibrators[int(r[1])].apply([float(r[5])])[0]) for r in rows]  # type: ignore[union-attr]
        )
        card_p, card_fraud = _cards(day, cards, calibrators)
        days.append(
            estimate_day(
                DayInput(
                    day=day,
                    matured=day < matured,
                    n=np.array([int(r[4]) for r in rows]),
                    p=p,
                    order=np.argsort(np.argsort(-mean_score, kind="stable"), kind="stable"),
                    above=np.array([bool(r[3]) for r in rows]),
                    frauds=np.array([int(r[6]) for r in rows]),
                    card_p=card_p,
                    card_fraud=card_fraud,
                ),
                simulations=s.estimation.simulations,
                confidence=s.estimation.confidence,
                seed=s.training.seed,
                in_training=trained_through is not None and day < trained_through,
            )
        )
    if not days:
        return None
    e = s.estimation
    return summarise(days, metric=e.metric, max_drop=e.max_drop, confidence=e.confidence)


def _cards(
    day: date, cards: list[tuple], calibrators: dict[int, Calibrator | None]
) -> tuple[np.ndarray, np.ndarray]:
    """Per top card of ``day``: the probability it had a fraud that day, and whether it did."""
    by_card: dict[str, tuple[float, bool]] = {}
    for d, card, score, version, fraud in cards:
        cal = calibrators.get(int(version))
        if d != day or cal is None:
            continue
        legit, seen = by_card.get(card, (1.0, False))
        by_card[card] = (legit * (1.0 - float(cal.apply([float(score)])[0])), seen or bool(fraud))
    p = np.array([1.0 - legit for legit, _ in by_card.values()])
    return p, np.array([f for _, f in by_card.values()], dtype=bool)
