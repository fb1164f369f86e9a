"""Calibration: the champion's scores as probabilities of fraud (issue 18).

fraudwatch's scores are ranking scores (training reweights frauds), not probabilities. At
training time the model's scores on its validation data (the latest part of the window,
labels matured) are mapped to the observed fraud rate:

- ``isotonic`` (default): pool-adjacent-violators over the validation scores, a
  non-decreasing step of fraud rates; each block's rate is shrunk toward the validation
  fraud rate by one pseudo-observation, so a block without a fraud is not certainly
  legitimate; between block centres the probability is interpolated linearly;
- ``platt``: ``p = 1 / (1 + exp(-(a * logit(score) + b)))``, fitted by Newton's method.

A :class:`Calibrator` is plain numbers, stored as JSON with the version in the registry's
artifact store (sha256-verified on every load, never pickled) and applied with
:meth:`Calibrator.apply`. Its quality on the validation data (Brier score, expected
calibration error) goes into the version's metrics and the model card.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

FORMAT = 1
_EPS = 1e-6


@dataclass(frozen=True)
class Calibrator:
    method: str  # isotonic | platt
    x: tuple[float, ...]  # isotonic: block centres (scores), increasing
    p: tuple[float, ...]  # isotonic: the probability at each centre
    a: float  # platt
    b: float
    n: int  # validation rows it was fitted on
    frauds: int

    def apply(self, scores: Any) -> np.ndarray:
        s = np.asarray(scores, dtype=float)
        if self.method == "platt":
            z = self.a * _logit(s) + self.b
            return 1.0 / (1.0 + np.exp(-z))
        return np.interp(s, np.asarray(self.x), np.asarray(self.p))

    def to_json(self) -> str:
        return json.dumps(
            {"format": FORMAT, **{k: v for k, v in self.__dict__.items()}}, sort_keys=True
        )

    @classmethod
    def from_json(cls, text: str) -> Calibrator:
        """Parse a stored calibrator; ValueError when it is not one."""
        d = json.loads(text)
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError("not a fraudwatch calibrator (format 1)")
        x, p = tuple(float(v) for v in d["x"]), tuple(float(v) for v in d["p"])
        if d["method"] not in ("isotonic", "platt") or len(x) != len(p):
            raise ValueError("a calibrator names isotonic or platt, with as many x as p")
        if d["method"] == "isotonic" and (
            not x or any(b < a for a, b in zip(x, x[1:], strict=False))
        ):
            raise ValueError("an isotonic calibrator's breakpoints must increase")
        return cls(d["method"], x, p, float(d["a"]), float(d["b"]), int(d["n"]), int(d["frauds"]))


@dataclass(frozen=True)
class CalibrationQuality:
    brier_raw: float  # Brier score of the raw scores taken as probabilities
    brier: float  # of the calibrated probabilities
    ece: float  # expected calibration error (10 equal-count bins), calibrated

    def to_metrics(self) -> dict[str, float]:
        return {
            "calibration_brier_raw": self.brier_raw,
            "calibration_brier": self.brier,
            "calibration_ece": self.ece,
        }


def _logit(s: np.ndarray) -> np.ndarray:
    c = np.clip(s, _EPS, 1 - _EPS)
    return np.log(c / (1 - c))


def _pav(x: np.ndarray, rows: np.ndarray, frauds: np.ndarray, sums: np.ndarray) -> Calibrator:
    """Pool adjacent violators over blocks ordered by score (``x``: their scores, increasing;
    ``rows``, ``frauds`` and ``sums`` of scores per block), each block's rate shrunk toward
    the overall rate by one pseudo-observation."""
    blocks: list[list[float]] = []  # [frauds, rows, sum of scores]
    for f, n, t in zip(frauds, rows, sums, strict=True):
        blocks.append([float(f), float(n), float(t)])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            f2, n2, t2 = blocks.pop()
            blocks[-1][0] += f2
            blocks[-1][1] += n2
            blocks[-1][2] += t2
    total, positives = float(rows.sum()), float(frauds.sum())
    base = positives / total
    centres = [b[2] / b[1] for b in blocks]
    probs = [(b[0] + base) / (b[1] + 1.0) for b in blocks]  # one pseudo-observation
    probs = list(np.maximum.accumulate(probs))  # shrinkage must not break monotonicity
    del x
    return Calibrator(
        "isotonic", tuple(centres), tuple(probs), 0.0, 0.0, round(total), round(positives)
    )


def _isotonic(s: np.ndarray, y: np.ndarray) -> Calibrator:
    order = np.argsort(s, kind="stable")
    s, y = s[order], y[order]
    # one block per distinct score first, then pool adjacent violators
    uniq, start = np.unique(s, return_index=True)
    counts = np.diff(np.append(start, s.size)).astype(float)
    sums = np.add.reduceat(y, start).astype(float)
    xs = np.add.reduceat(s, start)
    return _pav(uniq, counts, sums, xs)


def _platt(z: np.ndarray, rows: np.ndarray, frauds: np.ndarray) -> Calibrator:
    """Newton's method on the logistic loss of (a, b), over logit scores ``z`` with their
    ``rows`` and ``frauds`` (one row each, or bins)."""
    a, b = 1.0, 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(a * z + b)))
        w = np.maximum(rows * p * (1 - p), 1e-12)
        r = rows * p - frauds
        g = np.array([np.sum(r * z), np.sum(r)])
        h = np.array([[np.sum(w * z * z), np.sum(w * z)], [np.sum(w * z), np.sum(w)]])
        h += np.eye(2) * 1e-9
        step = np.linalg.solve(h, g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    return Calibrator(
        "platt", (), (), float(a), float(b), round(float(rows.sum())), round(float(frauds.sum()))
    )


def fit_calibrator(scores: Any, labels: Any, method: str = "isotonic") -> Calibrator:
    """Fit on validation ``scores`` and their 0/1 ``labels`` (both classes needed)."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=float)
    if s.size == 0 or y.min() == y.max():
        raise ValueError("calibration needs validation rows of both classes")
    if method == "platt":
        return _platt(_logit(s), np.ones_like(y), y)
    return _isotonic(s, y)


def fit_binned(mean_scores: Any, rows: Any, frauds: Any, method: str = "isotonic") -> Calibrator:
    """Fit on scores reduced to bins: each bin's mean score, rows and frauds (both classes
    needed). Equal to :func:`fit_calibrator` on the rows when each bin holds one score."""
    x = np.asarray(mean_scores, dtype=float)
    n = np.asarray(rows, dtype=float)
    f = np.asarray(frauds, dtype=float)
    keep = n > 0
    x, n, f = x[keep], n[keep], f[keep]
    if x.size == 0 or f.sum() <= 0 or f.sum() >= n.sum():
        raise ValueError("calibration needs rows of both classes")
    if method == "platt":
        return _platt(_logit(x), n, f)
    order = np.argsort(x, kind="stable")
    x, n, f = x[order], n[order], f[order]
    return _pav(x, n, f, x * n)


def calibration_quality(cal: Calibrator, scores: Any, labels: Any) -> CalibrationQuality:
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=float)
    p = cal.apply(s)
    order = np.argsort(p, kind="stable")
    ece = 0.0
    for part in np.array_split(order, 10):
        if part.size:
            ece += part.size / p.size * abs(float(p[part].mean() - y[part].mean()))
    return CalibrationQuality(
        brier_raw=float(np.mean((s - y) ** 2)), brier=float(np.mean((p - y) ** 2)), ece=ece
    )
