"""A version's calibrator in the registry: stored as JSON in the artifact store at training
time (its sha256 in the lineage, ``extra.calibration``), verified on every load like the
model itself, never pickled (issue 18; the calibration is :mod:`reports.calibration`); and
the calibration kept current on the version's latest matured days
(:class:`CurrentCalibration`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np

from jobs.errors import FraudwatchError
from reports.calibration import Calibrator, fit_binned

if TYPE_CHECKING:
    from registry import Registry


def store_calibrator(reg: Registry, cal: Calibrator | None, method: str) -> dict[str, Any] | None:
    """Put the calibrator in the artifact store; what the lineage records of it."""
    if cal is None:
        return None
    sha = reg.artifacts.put(cal.to_json())
    return {
        "method": method,
        "sha256": sha,
        "rows": cal.n,
        "frauds": cal.frauds,
        "breakpoints": len(cal.x),
    }


def load_calibrator(reg: Registry, model_name: str, version: int) -> Calibrator | None:
    """The version's calibrator, verified by sha256; None for a version trained before
    calibration existed (or whose validation data had a single class)."""
    info = reg.get_version(model_name, version)
    entry = (info.lineage.extra or {}).get("calibration")
    if not entry:
        return None
    text = reg.artifacts.get(
        str(entry["sha256"]), what=f"{model_name} version {version}'s calibrator"
    )
    try:
        return Calibrator.from_json(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise FraudwatchError(
            f"{model_name} version {version}'s calibrator is not readable: {exc}"
        ) from None


# a refit needs this share of the frauds its training-time calibrator was fitted on
MIN_FRAUD_SHARE = 0.5


@dataclass(frozen=True)
class CalibrationSource:
    """Which calibration a version's scores of a day went through: the training-time one
    (fitted on the validation days), or a refit on the version's own scores of the matured
    days ``first`` .. ``last`` (issue 18: the calibration kept current)."""

    version: int
    refit: bool
    rows: int
    frauds: int
    first: date | None = None
    last: date | None = None
    spread: float = 0.0  # sd of the days' log-odds offsets around the refit (0: not measured)

    def describe(self) -> str:
        if not self.refit:
            return (
                f"v{self.version}'s training-time calibration (validation days: "
                f"{self.rows:,} rows, {self.frauds:,} frauds)"
            )
        return (
            f"v{self.version} recalibrated on its scores of {self.first} .. {self.last} "
            f"({self.rows:,} rows, {self.frauds:,} frauds)"
        )


class CurrentCalibration:
    """Per version, the calibrator for a day's scores: refitted on the version's scores of
    the latest ``days`` days whose labels had matured by then (after its training window,
    before ``matured``), once they hold at least half as many frauds as the validation data of its
    training-time calibrator; that one otherwise. ``bins``: the version's scores reduced to
    bins (arrays ``version``, ``day`` as ordinals, ``key`` of the bin, ``n``, ``total`` of the
    scores, ``frauds``)."""

    def __init__(
        self,
        trained: dict[int, Calibrator | None],
        trained_end: dict[int, date | None],
        bins: dict[str, np.ndarray],
        *,
        matured: date,
        delay: int,
        days: int,
        method: str,
    ) -> None:
        self.trained, self.trained_end, self.bins = trained, trained_end, bins
        self.matured, self.delay, self.days, self.method = matured, delay, days, method
        self._fits: dict[tuple[int, int, int], tuple[Calibrator, CalibrationSource]] = {}

    def for_day(
        self, version: int, day: date
    ) -> tuple[Calibrator | None, CalibrationSource | None]:
        cal = self.trained.get(version)
        if cal is None:
            return None, None
        trained = CalibrationSource(version, False, cal.n, cal.frauds)
        end = self.trained_end.get(version)
        hi = min(day.toordinal() + 1 - self.delay, self.matured.toordinal())
        lo = max(hi - self.days, end.toordinal() if end is not None else hi - self.days)
        if self.days <= 0 or lo >= hi:
            return cal, trained
        key = (version, lo, hi)
        if key not in self._fits:
            b = self.bins
            sel = (b["version"] == version) & (b["day"] >= lo) & (b["day"] < hi)
            frauds = float(b["frauds"][sel].sum())
            if frauds < max(cal.frauds * MIN_FRAUD_SHARE, 1) or frauds >= b["n"][sel].sum():
                return cal, trained
            keys, inv = np.unique(b["key"][sel], return_inverse=True)
            n = np.bincount(inv, weights=b["n"][sel], minlength=keys.size)
            total = np.bincount(inv, weights=b["total"][sel], minlength=keys.size)
            f = np.bincount(inv, weights=b["frauds"][sel], minlength=keys.size)
            refit = fit_binned(total / n, n, f, self.method)
            days = b["day"][sel]
            source = CalibrationSource(
                version, True, refit.n, refit.frauds,
                date.fromordinal(int(days.min())), date.fromordinal(int(days.max())),
                day_spread(refit, days, b["n"][sel], b["total"][sel], b["frauds"][sel]),
            )  # fmt: skip
            self._fits[key] = (refit, source)
        return self._fits[key]


def day_spread(
    cal: Calibrator, days: np.ndarray, n: np.ndarray, total: np.ndarray, frauds: np.ndarray
) -> float:
    """How far the days' fraud levels stray from the calibration fitted on them: the
    standard deviation of each day's log ratio of frauds to the calibration's expected
    frauds, less what chance alone gives (about ``1 / expected``); 0 with fewer than 3
    days. Bins: ``days``, rows ``n``, ``total`` of their scores, ``frauds``."""
    index = np.unique(days, return_inverse=True)[1]
    if index.max(initial=-1) < 2:
        return 0.0
    expected = np.bincount(index, weights=n * cal.apply(total / np.maximum(n, 1)))
    seen = np.bincount(index, weights=frauds)
    ratio = np.log((seen + 0.5) / (expected + 0.5))
    excess = float(np.var(ratio, ddof=1) - np.mean(1.0 / (expected + 0.5)))
    return float(np.sqrt(excess)) if excess > 0 else 0.0
