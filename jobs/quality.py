"""Data-quality checks on a training frame: a pure function, results recorded with the version.

A failing check never crashes training: the version is registered with
``data_quality: failed`` and the reasons, and the promotion gate refuses it
unless forced. Checks (thresholds from ``[training.quality]``):

- ``min_rows`` / ``min_frauds``: enough rows and frauds to learn from;
- ``fraud_rate``: the fraud rate within a plausible band;
- ``missing_rate``: no feature missing more often than ``max_missing_rate``;
- ``constant_features``: no feature with a single value;
- ``label_coverage``: the share of rows whose labels had time to mature.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import polars as pl

from jobs.config import Quality


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str
    value: float | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class QualityReport:
    passed: bool
    checks: tuple[Check, ...]
    missing_rates: dict[str, float]

    @property
    def status(self) -> str:
        return "passed" if self.passed else "failed"

    @property
    def reasons(self) -> list[str]:
        return [c.detail for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "checks": [asdict(c) for c in self.checks],
            "reasons": self.reasons,
            "missing_rates": self.missing_rates,
        }


def check_training_frame(
    frame: pl.DataFrame,
    features: list[str],
    *,
    label: str = "is_fraud",
    label_coverage: float,
    policy: Quality,
) -> QualityReport:
    """Run every check on ``frame`` (features + label); return all results, pass or fail."""
    checks: list[Check] = []
    n = frame.height
    frauds = int(frame[label].sum()) if n else 0
    rate = frauds / n if n else 0.0

    checks.append(
        Check(
            "min_rows",
            n >= policy.min_rows,
            f"{n} training rows (minimum {policy.min_rows})",
            float(n),
            float(policy.min_rows),
        )
    )
    checks.append(
        Check(
            "min_frauds",
            frauds >= policy.min_frauds,
            f"{frauds} frauds (minimum {policy.min_frauds})",
            float(frauds),
            float(policy.min_frauds),
        )
    )
    in_band = policy.min_fraud_rate <= rate <= policy.max_fraud_rate
    checks.append(
        Check(
            "fraud_rate",
            in_band,
            f"fraud rate {rate:.4%} "
            + ("within" if in_band else "outside")
            + f" the plausible band {policy.min_fraud_rate:.4%}..{policy.max_fraud_rate:.2%}",
            rate,
            None,
        )
    )

    missing: dict[str, float] = {}
    if n:
        nulls = frame.select(
            [
                (
                    pl.col(f).is_null() | pl.col(f).is_nan()
                    if frame.schema[f].is_float()
                    else pl.col(f).is_null()
                )
                .mean()
                .alias(f)
                for f in features
            ]
        ).row(0)
        missing = {f: float(v or 0.0) for f, v in zip(features, nulls, strict=True)}
    too_missing = {f: r for f, r in missing.items() if r > policy.max_missing_rate}
    if too_missing:
        worst = ", ".join(
            f"{f} {r:.1%}" for f, r in sorted(too_missing.items(), key=lambda kv: -kv[1])
        )
        detail = f"features missing more than {policy.max_missing_rate:.0%} of the time: {worst}"
    else:
        top = max(missing.values(), default=0.0)
        detail = f"every feature present (highest missing rate {top:.1%})"
    checks.append(
        Check(
            "missing_rate",
            not too_missing,
            detail,
            max(missing.values(), default=0.0),
            policy.max_missing_rate,
        )
    )

    constant: list[str] = []
    if n:
        uniques = frame.select([pl.col(f).drop_nulls().n_unique().alias(f) for f in features]).row(
            0
        )
        constant = [f for f, u in zip(features, uniques, strict=True) if u <= 1]
    checks.append(
        Check(
            "constant_features",
            not constant,
            ("constant features: " + ", ".join(constant)) if constant else "no constant feature",
            float(len(constant)),
            0.0,
        )
    )
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
    return QualityReport(all(c.passed for c in checks), tuple(checks), missing)
