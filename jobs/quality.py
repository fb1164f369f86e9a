"""Data-quality checks on a training frame: a pure function, results recorded with the version.

A failing check never crashes training: the version is registered with
``data_quality: failed`` and the reasons, and the promotion gate refuses it
unless forced. Each check is an *error* (it fails the report) or a *warning*
(recorded and shown, never a refusal). Thresholds from ``[training.quality]``.

Errors, the signs of a broken feed or an unusable window:

- ``min_rows`` / ``min_frauds``: enough rows and frauds to learn from;
- ``fraud_rate``: the fraud rate within a plausible band;
- ``missing_rate``: a feature missing more often than ``max_missing_rate`` that
  became so: more than ``max_missing_increase`` above its rate in the reference
  (the champion's training data), or any such feature when there is no reference;
- ``constant_features``: a feature with a single value that varied in the reference;
- ``label_coverage``: the share of rows whose labels had time to mature.

Warnings, what is structural rather than broken:

- ``structural_missing``: mostly missing, and as missing in the reference;
- ``structural_constant``: constant, and constant in the reference too (or no
  reference to tell): a model learns nothing from it and loses nothing;
- ``warm_up``: rows whose look-back windows reach before the first transaction in
  the warehouse, so their counts and rates are not yet full.

So a structurally constant feature (``is_weekend`` in a window of weekdays, a rate
with no fraud yet) no longer refuses every model, while a column that a broken
feed emptied still does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import polars as pl

from jobs.config import Quality

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str
    value: float | None = None
    threshold: float | None = None
    severity: Severity = "error"


@dataclass(frozen=True)
class FeatureProfile:
    """What the checks compare against: a feature's missing rate and whether it varied."""

    missing_rate: float
    constant: bool | None  # None: not recorded (versions trained before profiles)


@dataclass(frozen=True)
class QualityReport:
    passed: bool
    checks: tuple[Check, ...]
    missing_rates: dict[str, float]
    profile: dict[str, FeatureProfile]

    @property
    def status(self) -> str:
        return "passed" if self.passed else "failed"

    @property
    def reasons(self) -> list[str]:
        """Why the report failed: the failed errors."""
        return [c.detail for c in self.checks if not c.passed and c.severity == "error"]

    @property
    def warnings(self) -> list[str]:
        return [c.detail for c in self.checks if not c.passed and c.severity == "warning"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "checks": [asdict(c) for c in self.checks],
            "reasons": self.reasons,
            "warnings": self.warnings,
            "missing_rates": self.missing_rates,
            "profile": {f: asdict(p) for f, p in self.profile.items()},
        }


def reference_profile(data_quality: Mapping[str, Any] | None) -> dict[str, FeatureProfile]:
    """The profile a version's recorded data quality holds (older versions: missing rates)."""
    if not data_quality:
        return {}
    if data_quality.get("profile"):
        return {
            f: FeatureProfile(float(p["missing_rate"]), p.get("constant"))
            for f, p in data_quality["profile"].items()
        }
    return {
        f: FeatureProfile(float(r), None) for f, r in data_quality.get("missing_rates", {}).items()
    }


def _profile(frame: pl.DataFrame, features: list[str]) -> dict[str, FeatureProfile]:
    if not frame.height:
        return {f: FeatureProfile(0.0, None) for f in features}
    missing = frame.select(
        (
            pl.col(f).is_null() | pl.col(f).is_nan()
            if frame.schema[f].is_float()
            else pl.col(f).is_null()
        )
        .mean()
        .alias(f)
        for f in features
    ).row(0)
    distinct = frame.select(
        (pl.col(f).fill_nan(None) if frame.schema[f].is_float() else pl.col(f))
        .drop_nulls()
        .n_unique()
        .alias(f)
        for f in features
    ).row(0)
    return {
        f: FeatureProfile(float(m or 0.0), int(d) <= 1)
        for f, m, d in zip(features, missing, distinct, strict=True)
    }


def _volume_checks(n: int, frauds: int, policy: Quality) -> list[Check]:
    rate = frauds / n if n else 0.0
    in_band = policy.min_fraud_rate <= rate <= policy.max_fraud_rate
    return [
        Check(
            "min_rows",
            n >= policy.min_rows,
            f"{n} training rows (minimum {policy.min_rows})",
            float(n),
            float(policy.min_rows),
        ),
        Check(
            "min_frauds",
            frauds >= policy.min_frauds,
            f"{frauds} frauds (minimum {policy.min_frauds})",
            float(frauds),
            float(policy.min_frauds),
        ),
        Check(
            "fraud_rate",
            in_band,
            f"fraud rate {rate:.4%} "
            + ("within" if in_band else "outside")
            + f" the plausible band {policy.min_fraud_rate:.4%}..{policy.max_fraud_rate:.2%}",
            rate,
            None,
        ),
    ]


def _missing_checks(
    profile: dict[str, FeatureProfile], reference: Mapping[str, FeatureProfile], policy: Quality
) -> list[Check]:
    broken: dict[str, str] = {}
    structural: dict[str, str] = {}
    for f, p in sorted(profile.items(), key=lambda kv: -kv[1].missing_rate):
        if p.missing_rate <= policy.max_missing_rate:
            continue
        ref = reference.get(f)
        if ref is None:
            broken[f] = f"{f} {p.missing_rate:.1%}"
        elif p.missing_rate - ref.missing_rate > policy.max_missing_increase:
            broken[f] = f"{f} {p.missing_rate:.1%} (was {ref.missing_rate:.1%})"
        else:
            structural[f] = f"{f} {p.missing_rate:.1%} (was {ref.missing_rate:.1%})"
    top = max((p.missing_rate for p in profile.values()), default=0.0)
    against = "the champion's training data" if reference else "no reference yet"
    return [
        Check(
            "missing_rate",
            not broken,
            f"features missing more than {policy.max_missing_rate:.0%} of the time "
            f"({against}): " + ", ".join(broken.values())
            if broken
            else f"every feature present (highest missing rate {top:.1%})",
            top,
            policy.max_missing_rate,
        ),
        Check(
            "structural_missing",
            not structural,
            "mostly missing, as in the champion's training data: " + ", ".join(structural.values())
            if structural
            else "no feature mostly missing by design",
            float(len(structural)),
            0.0,
            "warning",
        ),
    ]


def _constant_checks(
    profile: dict[str, FeatureProfile], reference: Mapping[str, FeatureProfile]
) -> list[Check]:
    constant = [f for f, p in profile.items() if p.constant]
    became = [f for f in constant if f in reference and reference[f].constant is False]
    structural = [f for f in constant if f not in became]
    return [
        Check(
            "constant_features",
            not became,
            "became constant (they varied in the champion's training data): " + ", ".join(became)
            if became
            else "no feature became constant",
            float(len(became)),
            0.0,
        ),
        Check(
            "structural_constant",
            not structural,
            "constant features, a model learns nothing from them: " + ", ".join(structural)
            if structural
            else "no constant feature",
            float(len(structural)),
            0.0,
            "warning",
        ),
    ]


def check_training_frame(
    frame: pl.DataFrame,
    features: list[str],
    *,
    label: str = "is_fraud",
    label_coverage: float,
    policy: Quality,
    reference: Mapping[str, FeatureProfile] | None = None,
    warm_up_share: float = 0.0,
) -> QualityReport:
    """Run every check on ``frame`` (features + label); return all results, pass or fail.

    ``reference``: the champion's training profile (:func:`reference_profile`), if any;
    ``warm_up_share``: the share of rows whose windows reach before the data's start.
    """
    reference = reference or {}
    n = frame.height
    frauds = int(frame[label].sum()) if n else 0
    profile = _profile(frame, features)
    checks = _volume_checks(n, frauds, policy)
    checks += _missing_checks(profile, reference, policy)
    checks += _constant_checks(profile, reference)
    checks.append(
        Check(
            "label_coverage",
            label_coverage >= policy.min_label_coverage,
            f"{label_coverage:.1%} of rows have matured labels "
            f"(minimum {policy.min_label_coverage:.0%})",
            label_coverage,
            policy.min_label_coverage,
        )
    )
    checks.append(
        Check(
            "warm_up",
            warm_up_share == 0.0,
            f"{warm_up_share:.1%} of rows are from the data's first days, "
            "when their look-back windows are not yet full"
            if warm_up_share
            else "every row has its full look-back",
            warm_up_share,
            0.0,
            "warning",
        )
    )
    passed = all(c.passed for c in checks if c.severity == "error")
    missing = {f: p.missing_rate for f, p in profile.items()}
    return QualityReport(passed, tuple(checks), missing, profile)
