"""Training on a weighted sample: what changes when the rows stand for more rows.

A training set sampled past ``[spark] max_training_rows`` keeps every fraud and a share
``rate`` of the legitimate rows, each weighing ``1 / rate`` (:mod:`jobs.spark.training_sets`).
:func:`jobs.training.fit` then trains on weighted rows; two things it records need more:

- the volume checks (rows, frauds, fraud rate) count the rows the sample stands for, not the
  rows kept: a sample's fraud rate is the window's times ``1 / rate`` and would fail the
  plausible band;
- the calibrator: :func:`reports.calibration.fit_calibrator` takes no weights, so it is fitted
  on the sampled validation rows and then moved to the population's fraud rate. With weights
  constant within each class (as sampling gives), that is exact for the isotonic blocks (a
  block's weighted fraud rate is its sampled rate with the odds multiplied by
  ``w_fraud / w_legit``, and the map is monotone, so the pooling is the same) and for Platt
  scaling it is the intercept shift ``log(w_fraud / w_legit)``.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from jobs.config import Quality
from jobs.quality import QualityReport, _volume_checks
from reports.calibration import Calibrator

VOLUME = ("min_rows", "min_frauds", "fraud_rate")


def weighted_volume(
    quality: QualityReport, weights: np.ndarray, y: np.ndarray, policy: Quality
) -> QualityReport:
    """The report with its volume checks on the weighted rows (what the sample stands for)."""
    rows = round(float(weights.sum()))
    frauds = round(float(weights[y == 1].sum()))
    fresh = {c.name: c for c in _volume_checks(rows, frauds, policy)}
    checks = tuple(fresh.get(c.name, c) if c.name in VOLUME else c for c in quality.checks)
    passed = all(c.passed for c in checks if c.severity == "error")
    return replace(quality, passed=passed, checks=checks)


def prior_corrected(cal: Calibrator, y: np.ndarray, weights: np.ndarray) -> Calibrator:
    """The calibrator fitted on sampled rows, moved to the population they stand for: the
    odds of fraud multiplied by (mean fraud weight / mean legit weight)."""
    fraud_w = float(weights[y == 1].mean()) if (y == 1).any() else 1.0
    legit_w = float(weights[y == 0].mean()) if (y == 0).any() else 1.0
    factor = fraud_w / legit_w
    if factor == 1.0:
        return cal
    if cal.method == "platt":
        return replace(cal, b=cal.b + math.log(factor))
    p = np.clip(np.asarray(cal.p, dtype=float), 1e-12, 1 - 1e-12)
    odds = p / (1 - p) * factor
    return replace(cal, p=tuple(float(v) for v in odds / (1 + odds)))
