"""Performance estimated before the labels mature, from calibrated scores (issue 18).

Confidence-based performance estimation, as NannyML's CBPE: if the calibrated probability
``p`` of each transaction is right, its label is a coin with that bias, and every metric
has a distribution we can draw from. Each day is simulated ``simulations`` times and the
estimate is the mean of the draws, the interval their central ``confidence`` share.

A day comes as score bins (narrow, so the transactions of a bin share one ``p``), each with
its rows, the mean calibrated probability, whether it is at or above the alert threshold,
and the frauds its labels say so far; and as the day's top-``k`` cards with the probability
that each had a fraud that day (``1 - prod(1 - p)`` over its transactions) and whether it
had one. The metrics, computed the same way on the draws and on the labels once matured:

- ``precision_at_threshold`` / ``recall_at_threshold``: frauds among the transactions at or
  above the threshold / among all the day's frauds;
- ``average_precision``: over the bins from the highest score down (transactions of one bin
  are tied), the mean over frauds of the precision at their bin;
- ``card_precision_at_k``: the share of the day's ``k`` best-scored cards with a fraud
  (without the performance report's rule that skips cards caught on earlier days).

The interval covers the randomness of the labels given the probabilities and, when the
calibration was fitted on recent days (``spread``), how far a day's fraud level strays
from it: each draw moves the day's log-odds by an offset drawn from the spread measured on
those days. When the world drifts away from the calibration, it can still miss (the report
says how often it did).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

METRICS = (
    "average_precision",
    "precision_at_threshold",
    "recall_at_threshold",
    "card_precision_at_k",
)


@dataclass(frozen=True)
class Interval:
    estimate: float | None
    low: float | None
    high: float | None

    def holds(self, value: float | None) -> bool | None:
        if value is None or self.low is None or self.high is None:
            return None
        return self.low - 1e-12 <= value <= self.high + 1e-12


@dataclass(frozen=True)
class DayInput:
    """One day's bins (arrays of equal length) and top cards."""

    day: date
    matured: bool
    n: np.ndarray  # rows per bin
    p: np.ndarray  # mean calibrated probability per bin
    order: np.ndarray  # rank of the bin by score, 0 = highest
    above: np.ndarray  # bool: the bin is at or above the alert threshold
    frauds: np.ndarray  # frauds the labels say so far
    card_p: np.ndarray = field(default_factory=lambda: np.zeros(0))  # top-k cards
    card_fraud: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    # the day-to-day spread of the fraud level around the calibration (sd of a log-odds
    # offset), measured on the days it was fitted on; 0: the labels' randomness only
    spread: float = 0.0


@dataclass(frozen=True)
class DayEstimate:
    day: date
    matured: bool
    n: int
    alerts: int
    estimated: dict[str, Interval]
    realised: dict[str, float | None]  # empty until the day's labels matured
    in_training: bool = False  # inside the champion's training window: not held to it
    calibration: str = ""  # which calibration the day's scores went through

    def holds(self, metric: str) -> bool | None:
        if self.in_training:
            return None
        return self.estimated[metric].holds(self.realised.get(metric))


def _metrics(pos: np.ndarray, d: DayInput, order: np.ndarray) -> dict[str, np.ndarray]:
    """The metrics for fraud counts ``pos`` (draws x bins, or 1 x bins)."""
    total = pos.sum(axis=1)
    tp = pos[:, d.above].sum(axis=1)
    alerts = d.n[d.above].sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / alerts if alerts else np.full(total.shape, np.nan)
        recall = np.where(total > 0, tp / np.maximum(total, 1), np.nan)
        sp = pos[:, order]
        cum_pos = np.cumsum(sp, axis=1)
        cum_n = np.cumsum(d.n[order])
        ap = np.where(
            total > 0, (sp * (cum_pos / cum_n)).sum(axis=1) / np.maximum(total, 1), np.nan
        )
    return {
        "average_precision": ap,
        "precision_at_threshold": precision,
        "recall_at_threshold": recall,
    }


def _shifted(p: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Probabilities with their log-odds moved by ``offset`` (0 and 1 stay)."""
    up = p * np.exp(offset)
    return up / (1.0 - p + up)


def _interval(draws: np.ndarray, confidence: float) -> Interval:
    ok = draws[~np.isnan(draws)]
    if ok.size == 0:
        return Interval(None, None, None)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(ok, [tail, 100 - tail])
    return Interval(float(ok.mean()), float(low), float(high))


def _value(x: Any) -> float | None:
    v = float(x)
    return None if np.isnan(v) else v


# The version of what estimate_day (and _metrics, _shifted, _interval, _value) computes: part
# of the key of the estimates kept between runs (jobs/estimate_cache.py). Bump it with any
# change to their results, or reports will show estimates kept from the old code.
ESTIMATE_VERSION = 1


def estimate_day(
    d: DayInput,
    *,
    simulations: int,
    confidence: float,
    seed: int = 0,
    in_training: bool = False,
    calibration: str = "",
) -> DayEstimate:
    """The day's metrics drawn ``simulations`` times from its calibrated probabilities, and
    (when matured) computed on its labels."""
    rng = np.random.default_rng([seed, d.day.toordinal()])
    order = np.argsort(d.order, kind="stable")
    p, card_p = np.clip(d.p, 0, 1)[None, :], np.clip(d.card_p, 0, 1)[None, :]
    if d.spread > 0:  # each draw's day sits somewhere in the spread of the calibration's days
        offset = np.random.default_rng([seed, d.day.toordinal(), 1]).normal(
            0.0, d.spread, (simulations, 1)
        )
        p, card_p = _shifted(p, offset), _shifted(card_p, offset)
    draws = rng.binomial(d.n[None, :].astype(np.int64), p, size=(simulations, d.n.size))
    sims = _metrics(draws, d, order)
    if d.card_p.size:
        card_draws = rng.random((simulations, d.card_p.size)) < card_p
        sims["card_precision_at_k"] = card_draws.mean(axis=1)
    else:
        sims["card_precision_at_k"] = np.full(simulations, np.nan)
    estimated = {m: _interval(sims[m], confidence) for m in METRICS}
    realised: dict[str, float | None] = {}
    if d.matured:
        real = _metrics(d.frauds[None, :].astype(float), d, order)
        realised = {m: _value(real[m][0]) for m in real}
        realised["card_precision_at_k"] = float(d.card_fraud.mean()) if d.card_fraud.size else None
    return DayEstimate(
        day=d.day,
        matured=d.matured,
        n=int(d.n.sum()),
        alerts=int(d.n[d.above].sum()),
        estimated=estimated,
        realised=realised,
        in_training=in_training,
        calibration=calibration,
    )


@dataclass(frozen=True)
class EstimationSummary:
    """Estimate against realised on the matured days, and the estimated drop of the
    recent days (labels not matured) below the matured days' estimate."""

    metric: str
    days: tuple[DayEstimate, ...]
    held: int  # matured days whose interval held the realised figure
    compared: int  # matured days with both
    reference: float | None  # mean estimate over the matured days after the training window
    recent: float | None  # mean estimate over the days not matured
    recent_days: int
    max_drop: float
    confidence: float

    @property
    def calibration(self) -> str:
        """The calibration of the latest day's scores."""
        return self.days[-1].calibration if self.days else ""

    @property
    def drop(self) -> float | None:
        if self.reference is None or self.recent is None:
            return None
        return self.reference - self.recent

    @property
    def alarm(self) -> str | None:
        drop = self.drop
        if drop is None or drop <= self.max_drop:
            return None
        name = self.metric.replace("_", " ")
        return (
            f"estimated {name} of the last {self.recent_days} day(s), whose labels have not "
            f"matured, is {self.recent:.3f}: {drop:.3f} below its estimate over the matured "
            f"days ({self.reference:.3f}), more than estimation.max_drop {self.max_drop:g}"
        )

    def coverage(self, metric: str | None = None) -> tuple[int, int]:
        """(held, compared) over the matured days for ``metric`` (the summary's by default)."""
        m = metric or self.metric
        seen = [d.holds(m) for d in self.days if d.matured]
        return sum(1 for h in seen if h), sum(1 for h in seen if h is not None)


def summarise(
    days: list[DayEstimate], *, metric: str, max_drop: float, confidence: float
) -> EstimationSummary:
    def mean(values: list[float | None]) -> float | None:
        ok = [v for v in values if v is not None]
        return float(np.mean(ok)) if ok else None

    matured = [d.estimated[metric].estimate for d in days if d.matured and not d.in_training]
    recent = [d.estimated[metric].estimate for d in days if not d.matured]
    seen = [d.holds(metric) for d in days if d.matured]
    return EstimationSummary(
        metric=metric,
        days=tuple(days),
        held=sum(1 for h in seen if h),
        compared=sum(1 for h in seen if h is not None),
        reference=mean(matured),
        recent=mean(recent),
        recent_days=len(recent),
        max_drop=max_drop,
        confidence=confidence,
    )
