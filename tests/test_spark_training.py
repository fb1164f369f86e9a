"""Training on a weighted sample (what the Spark engine hands the driver past
``[spark] max_training_rows``): the weights make the sample stand for the window.

No Spark needed: the sample is drawn here as :mod:`jobs.spark.training_sets` draws it (every
fraud, legitimate rows at a rate, each weighing 1 / rate), and the fit is the real one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from jobs.config import Config
from jobs.training import TrainedModel, TrainingData, TrainingWindow, fit

RATE = 0.1  # legitimate rows kept
CONFIG = """
[training.quality]
min_rows = 1000
min_frauds = 20
max_fraud_rate = 0.05

[model]
num_boost_round = 40
"""


def _world(n: int = 30_000) -> tuple[TrainingData, np.ndarray]:
    """A window of ``n`` rows (about 1.5% fraud, driven by ``f1``) and a 10% legit sample."""
    rng = np.random.default_rng(7)
    f1, f2 = rng.normal(size=n), rng.normal(size=n)
    fraud = rng.random(n) < 1 / (1 + np.exp(-(2 * f1 - 6)))
    t0 = datetime(2026, 1, 1)
    frame = pl.DataFrame(
        {
            "transaction_id": [f"t{i}" for i in range(n)],
            "event_time": [t0 + timedelta(seconds=10 * i) for i in range(n)],
            "f1": f1,
            "f2": f2,
            "is_fraud": fraud,
        }
    )
    window = TrainingWindow(
        t0, t0 + timedelta(days=4), t0 + timedelta(days=11), t0 + timedelta(days=30)
    )
    keep = fraud | (rng.random(n) < RATE)
    return TrainingData(window, frame, ("f1", "f2"), (), 1.0, "full"), keep


def _sample(data: TrainingData, keep: np.ndarray) -> tuple[TrainingData, np.ndarray]:
    frame = data.frame.filter(pl.Series(keep))
    weights = np.where(frame["is_fraud"].to_numpy(), 1.0, 1 / RATE)
    return TrainingData(data.window, frame, data.features, (), 1.0, "sample"), weights


def _mean_probability(model: TrainedModel, data: TrainingData) -> float:
    """The calibrated probability of fraud, averaged over the window's latest fifth."""
    tail = data.frame.tail(data.frame.height // 5)
    scores = model.booster.predict(tail.select("f1", "f2").to_numpy())
    return float(model.calibrator.apply(scores).mean())


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_a_weighted_sample_trains_and_measures_as_the_window_would(
    write_config: Callable[..., Config], method: str
) -> None:
    cfg = write_config(extra=CONFIG + f'\n[estimation]\ncalibration = "{method}"\n')
    full, keep = _world()
    sample, weights = _sample(full, keep)
    truth = fit(cfg, full)
    weighted = fit(cfg, sample, weights=weights)
    unweighted = fit(cfg, sample)
    rate = float(full.frame.tail(full.frame.height // 5)["is_fraud"].mean())

    # validation metrics: average precision depends on the fraud rate; weighted, the sample's
    # is the window's (within noise), unweighted it flatters the model several times over
    ap = truth.metrics["average_precision"]
    assert abs(weighted.metrics["average_precision"] - ap) < 0.1
    assert unweighted.metrics["average_precision"] > ap + 0.2
    assert weighted.metrics["n_valid_weighted"] == pytest.approx(full.frame.height / 5, rel=0.1)
    # the calibrator gives the window's fraud rate, not the sample's
    assert _mean_probability(weighted, full) == pytest.approx(rate, rel=0.35)
    assert _mean_probability(unweighted, full) > 3 * rate
    # the volume checks count the rows the sample stands for: its own fraud rate (~13%)
    # would fail the band (at most 5% here)
    checks = {c.name: c for c in weighted.quality.checks}
    assert checks["fraud_rate"].passed and checks["fraud_rate"].value == pytest.approx(
        float(full.frame["is_fraud"].mean()), rel=0.1
    )
    assert checks["min_rows"].value == pytest.approx(full.frame.height, rel=0.05)
    assert not {c.name: c for c in unweighted.quality.checks}["fraud_rate"].passed
    assert weighted.quality.passed


def test_weights_must_be_one_positive_number_per_row(
    write_config: Callable[..., Config],
) -> None:
    cfg = write_config(extra=CONFIG)
    full, keep = _world(3_000)
    sample, weights = _sample(full, keep)
    with pytest.raises(ValueError, match="positive finite weights"):
        fit(cfg, sample, weights=weights[:-1])
    with pytest.raises(ValueError, match="positive finite weights"):
        fit(cfg, sample, weights=np.where(weights > 1, 0.0, 1.0))
