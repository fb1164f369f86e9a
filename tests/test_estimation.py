"""Calibration and estimated performance (issue 18): the calibrator maps scores to observed
fraud rates and survives its JSON round trip; when the probabilities are right, the
estimate's interval holds the realised figure about as often as it says; an estimated drop
beyond the tolerance is an alarm. (The simulated worlds: tests/test_estimation_world.py and
benchmarks/estimation.py.)"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from reports.calibration import Calibrator, calibration_quality, fit_calibrator
from reports.estimation import METRICS, DayInput, estimate_day, summarise


def _scores(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ranking scores whose true fraud probability is score**3 (a reweighted model's)."""
    rng = np.random.default_rng(seed)
    s = rng.random(n)
    return s, (rng.random(n) < s**3).astype(int)


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibrator_maps_scores_to_observed_fraud_rates(method: str) -> None:
    s, y = _scores(40_000, 1)
    cal = fit_calibrator(s, y, method)
    quality = calibration_quality(cal, s, y)
    assert quality.brier < quality.brier_raw * 0.7  # the raw scores are not probabilities
    assert quality.ece < 0.03
    grid = np.linspace(0, 1, 101)
    p = cal.apply(grid)
    assert np.all(np.diff(p) >= -1e-12) and p.min() >= 0 and p.max() <= 1
    # near the truth where there are rows: p(0.9) = 0.729
    assert abs(float(cal.apply([0.9])[0]) - 0.729) < 0.08
    assert Calibrator.from_json(cal.to_json()) == cal


def test_a_stored_calibrator_that_is_not_one_is_refused() -> None:
    for text in ('{"format": 2}', '{"format": 1, "method": "magic", "x": [], "p": []}', "[]"):
        with pytest.raises((ValueError, KeyError)):
            Calibrator.from_json(text)
    with pytest.raises(ValueError, match="both classes"):
        fit_calibrator([0.1, 0.2], [0, 0])


def _day(day: date, rng: np.random.Generator, n: int = 400, k: int = 10) -> DayInput:
    """A day whose calibrated probabilities are exactly right: labels drawn from them."""
    p = rng.beta(0.3, 6.0, n)
    y = rng.random(n) < p
    order = np.argsort(np.argsort(-p, kind="stable"), kind="stable")
    top = np.argsort(-p, kind="stable")[:k]
    return DayInput(
        day=day,
        matured=True,
        n=np.ones(n, dtype=int),
        p=p,
        order=order,
        above=p >= 0.2,
        frauds=y.astype(int),
        card_p=p[top],
        card_fraud=y[top],
    )


def test_intervals_hold_the_realised_figure_as_often_as_they_say() -> None:
    rng = np.random.default_rng(7)
    days = [
        estimate_day(
            _day(date(2026, 1, 1) + timedelta(days=i), rng), simulations=300, confidence=0.9
        )
        for i in range(120)
    ]
    summary = summarise(days, metric="average_precision", max_drop=0.1, confidence=0.9)
    for metric in METRICS:
        held, compared = summary.coverage(metric)
        assert compared == 120
        assert 0.82 <= held / compared <= 0.97, (metric, held)


def test_an_estimated_drop_beyond_the_tolerance_is_an_alarm() -> None:
    rng = np.random.default_rng(3)

    def days(scale: float, matured: bool, start: int) -> list:
        out = []
        for i in range(7):
            d = _day(date(2026, 2, 1) + timedelta(days=start + i), rng)
            d = DayInput(**{**d.__dict__, "p": d.p * scale, "matured": matured})
            out.append(estimate_day(d, simulations=200, confidence=0.9))
        return out

    steady = days(1.0, True, 0) + days(1.0, False, 7)
    assert summarise(steady, metric="average_precision", max_drop=0.1, confidence=0.9).alarm is None
    shifted = days(1.0, True, 0) + days(0.3, False, 7)  # the model grew unsure of its alerts
    summary = summarise(shifted, metric="average_precision", max_drop=0.1, confidence=0.9)
    assert summary.drop is not None and summary.drop > 0.1
    assert summary.alarm is not None
    assert summary.alarm.startswith("estimated average precision of the last 7 day(s)")
    assert "more than estimation.max_drop 0.1" in summary.alarm
    assert (
        summarise(shifted, metric="average_precision", max_drop=0.9, confidence=0.9).alarm is None
    )
