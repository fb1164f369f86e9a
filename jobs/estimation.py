"""Estimated performance for the days whose labels have not matured (issue 18): the
warehouse reduces the champion's scores to narrow score bins and each day's top-``k``
cards, the versions' calibrators (verified, from the registry) turn scores into
probabilities, and :mod:`reports.estimation` draws the metrics from them.

Bins are ``floor(sqrt(score) * 1000)`` (fine where most transactions are, near 0) split
at the alert threshold; a bin's probability is its calibrator's at the bin's mean score.
Scores of a version without a calibrator (trained before calibration existed) are left
out; a day left with none is not estimated.

The rows come from the performance report's window table
(:func:`jobs.performance_data.scored_window`: scores, transactions and labels joined
once for the aggregates and the estimate alike).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import duckdb
import numpy as np

from jobs.calibration import CalibrationSource, CurrentCalibration, load_calibrator
from jobs.config import Config
from jobs.estimate_cache import EstimateCache
from jobs.performance_data import WINDOW, scored_window, top_cards
from reports.estimation import DayInput, EstimationSummary, summarise

if TYPE_CHECKING:
    from registry import Registry

BINS = 1000


@dataclass(frozen=True)
class EstimationPlan:
    """The event days ``[start, end)`` to estimate; days before ``matured`` get their
    realised figures too; days before ``trained_through`` (the champion's training window)
    are shown but neither held to their realised figure nor used as the reference. The
    champion's scores are read from ``rows_from``: the matured days before ``start`` that
    the first days' calibration is kept current on."""

    start: datetime
    end: datetime
    matured: date
    trained_through: date | None = None
    rows_from: datetime | None = None


def rows_from(cfg: Config, start: datetime) -> datetime:
    """The first day whose scores the estimate of the days from ``start`` reads: the
    recalibration's reference of the first day ends ``label_delay_days`` before it."""
    s = cfg.settings
    return start - timedelta(days=s.source.label_delay_days + s.estimation.recalibration_days)


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
    scores. Joins the champion's window itself: the performance report shares its own
    window table with :func:`estimate_from_window` instead."""
    plan = EstimationPlan(start, end, matured, trained_through, rows_from(cfg, start))
    with scored_window(
        con,
        model_name=cfg.settings.model.name,
        where="s.role = 'champion'",
        params=[],
        start=plan.rows_from or start,
        end=end,
        as_of=as_of,
    ):
        return estimate_from_window(con, cfg, reg, plan)


def _calibration(
    reg: Registry,
    cfg: Config,
    plan: EstimationPlan,
    versions: list[int],
    bins: dict[str, np.ndarray],
) -> CurrentCalibration:
    """The versions' calibrations: the training-time calibrators (verified) and the bins of
    their scores on the matured days, to refit them on."""
    s = cfg.settings
    trained_end: dict[int, date | None] = {}
    for v in versions:
        end = reg.get_version(s.model.name, v).lineage.training_end
        trained_end[v] = end.date() if isinstance(end, datetime) else end
    ordinal = bins["day"].astype("datetime64[D]").astype(np.int64) + date(1970, 1, 1).toordinal()
    matured = ordinal < plan.matured.toordinal()
    return CurrentCalibration(
        {v: load_calibrator(reg, s.model.name, v) for v in versions},
        trained_end,
        {
            "version": bins["model_version"][matured].astype(np.int64),
            "day": ordinal[matured],
            "key": bins["bin"][matured].astype(np.int64) * 2 + bins["above"][matured],
            "n": bins["n"][matured].astype(float),
            "total": bins["mean"][matured].astype(float) * bins["n"][matured],
            "frauds": bins["frauds"][matured].astype(float),
        },
        matured=plan.matured,
        delay=s.source.label_delay_days,
        days=s.estimation.recalibration_days,
        method=s.estimation.calibration,
    )


# a score's estimation bin (see the module's docstring)
BIN_SQL = f"least(floor(sqrt(greatest(score, 0)) * {BINS}), {BINS - 1})::INTEGER"

Columns = dict[str, np.ndarray]


def window_inputs(
    con: duckdb.DuckDBPyConnection, cfg: Config, plan: EstimationPlan
) -> tuple[Columns, Columns]:
    """The estimate's inputs from the window table's champion rows: per day, version, bin
    and side of the threshold (from ``rows_from``) the rows, their mean score and frauds;
    the rows of each day's top-``k`` cards (from ``start``: day, card_id, score,
    model_version, is_fraud)."""
    s = cfg.settings
    rows = "champion AND day >= ? AND day < ?"
    params = [plan.start.date(), plan.end.date()]
    bins = con.execute(
        f"SELECT day, model_version, {BIN_SQL} AS bin, score >= ? AS above, count(*) AS n, "
        f"avg(score) AS mean, count(*) FILTER (WHERE is_fraud) AS frauds FROM {WINDOW} "
        f"WHERE {rows} GROUP BY ALL ORDER BY 1, 2, 3, 4",
        [s.alerts.threshold, (plan.rows_from or plan.start).date(), plan.end.date()],
    ).fetchnumpy()
    top_cards(con, rows, params, s.alerts.daily_budget)
    cards = con.execute(
        "SELECT f.day, b.card_id, f.score, f.model_version, f.is_fraud "
        f"FROM (SELECT * FROM {WINDOW} WHERE {rows}) f "
        "JOIN fw_best b ON b.day = f.day AND b.card = f.card "
        "ORDER BY f.day, b.card_id, f.score",
        params,
    ).fetchnumpy()
    return bins, cards


def estimate_from_window(
    con: duckdb.DuckDBPyConnection, cfg: Config, reg: Registry, plan: EstimationPlan
) -> EstimationSummary | None:
    """The estimate from the window table's champion rows of the plan's days."""
    bins, cards = window_inputs(con, cfg, plan)
    return estimate_from_inputs(cfg, reg, plan, bins, cards)


def estimate_from_inputs(
    cfg: Config, reg: Registry, plan: EstimationPlan, bins: Columns, cards: Columns
) -> EstimationSummary | None:
    """The estimate from its inputs (:func:`window_inputs`, or the days kept between runs
    by :mod:`jobs.performance_days`); each day's estimate is kept between runs too
    (:mod:`jobs.estimate_cache`, under ``cfg.estimates_dir``)."""
    s = cfg.settings
    versions = sorted(
        {int(v) for v in bins["model_version"]} | {int(v) for v in cards["model_version"]}
    )
    calibration = _calibration(reg, cfg, plan, versions, bins)
    bin_days = _as_dates(bins["day"])
    card_days = _as_dates(cards["day"])
    kept = EstimateCache(cfg.estimates_dir)  # each day's estimate, kept between runs
    days = []
    for day in sorted(d for d in set(bin_days) if d >= plan.start.date()):
        on_day, cards_on_day = bin_days == day, card_days == day
        bin_p, card_p, sources = _probabilities(
            day, bins["mean"], bins["model_version"], on_day,
            cards["score"], cards["model_version"], cards_on_day, calibration,
        )  # fmt: skip
        sel = on_day & ~np.isnan(bin_p)
        if not sel.any():
            continue
        mean_score = bins["mean"][sel].astype(float)
        cp, cf = _cards(cards_on_day, cards, card_p)
        days.append(
            kept.estimate_day(
                DayInput(
                    day=day,
                    matured=day < plan.matured,
                    n=bins["n"][sel].astype(np.int64),
                    p=bin_p[sel],
                    order=np.argsort(np.argsort(-mean_score, kind="stable"), kind="stable"),
                    above=bins["above"][sel].astype(bool),
                    frauds=bins["frauds"][sel].astype(np.int64),
                    card_p=cp,
                    card_fraud=cf,
                    spread=max((x.spread for x in sources), default=0.0),
                ),
                simulations=s.estimation.simulations,
                confidence=s.estimation.confidence,
                seed=s.training.seed,
                in_training=plan.trained_through is not None and day < plan.trained_through,
                calibration="; ".join(x.describe() for x in sources),
            )
        )
    kept.tidy()
    if not days:
        return None
    e = s.estimation
    return summarise(days, metric=e.metric, max_drop=e.max_drop, confidence=e.confidence)


def _as_dates(values: np.ndarray) -> np.ndarray:
    """DuckDB's DATE column (numpy datetime64) as an object array of ``datetime.date``."""
    return values.astype("datetime64[D]").astype(object)


def _probabilities(
    day: date,
    bin_scores: np.ndarray,
    bin_versions: np.ndarray,
    bins_on_day: np.ndarray,
    card_scores: np.ndarray,
    card_versions: np.ndarray,
    cards_on_day: np.ndarray,
    calibration: CurrentCalibration,
) -> tuple[np.ndarray, np.ndarray, list[CalibrationSource]]:
    """The day's bin and card scores through their version's calibrator for the day, one
    call per version (NaN elsewhere, and for a version without one), and the calibrations
    used."""
    bin_p, card_p = np.full(len(bin_scores), np.nan), np.full(len(card_scores), np.nan)
    sources = []
    for v in sorted({int(x) for x in bin_versions[bins_on_day]}):
        cal, source = calibration.for_day(v, day)
        if cal is None or source is None:
            continue
        sources.append(source)
        sel = bins_on_day & (bin_versions == v)
        bin_p[sel] = cal.apply(bin_scores[sel].astype(float))
        sel = cards_on_day & (card_versions == v)
        card_p[sel] = cal.apply(card_scores[sel].astype(float))
    return bin_p, card_p, sources


def _cards(
    sel: np.ndarray, cards: dict[str, np.ndarray], p: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per top card of the day (rows ``sel``, ordered by card then score): the probability
    it had a fraud that day (``1 - prod(1 - p)`` over its calibrated transactions), and
    whether it did; cards without a calibrated transaction are left out."""
    keep = sel & ~np.isnan(p)
    ids = cards["card_id"][keep]
    if ids.size == 0:
        return np.zeros(0), np.zeros(0, dtype=bool)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    legit = np.multiply.reduceat(1.0 - p[keep], starts)
    fraud = np.logical_or.reduceat(cards["is_fraud"][keep].astype(bool), starts)
    return 1.0 - legit, fraud
