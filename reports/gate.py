"""The promotion gate: a pure function, metrics in, verdict with every reason out.

Rules, each reported as a check whether it passes or not:

1. data quality: the candidate's training data passed its checks (unless the
   policy says otherwise);
2. first model (no champion): its validation metrics reach
   ``first_model_min`` (e.g. average precision >= 0.05);
3. with a champion, the out-of-time window holds at least
   ``min_labelled_days`` days and ``min_frauds`` frauds;
4. the primary metric: the candidate beats the champion by at least
   ``min_improvement`` AND the lower bound of the bootstrap confidence
   interval of the difference is above zero, so a win within noise does not
   promote (when no interval could be computed, the point estimate decides);
5. every secondary metric in ``max_regression``: the candidate is not worse
   than the champion by more than its tolerance.

The candidate passes only if every check passes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from reports.compare import Comparison


@dataclass(frozen=True)
class GatePolicy:
    primary_metric: str = "average_precision"
    min_improvement: float = 0.0
    max_regression: dict[str, float] = field(
        default_factory=lambda: {"card_precision_at_k": 0.02, "recall_at_threshold": 0.02}
    )
    require_data_quality: bool = True
    min_labelled_days: int = 7
    min_frauds: int = 20
    first_model_min: dict[str, float] = field(
        default_factory=lambda: {"average_precision": 0.05, "roc_auc": 0.6}
    )


@dataclass(frozen=True)
class GateCheck:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reasons: tuple[str, ...]  # every check, in words, failures first
    checks: tuple[GateCheck, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "checks": [asdict(c) for c in self.checks],
        }


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _signed(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.3f}"


def decide(
    comparison: Comparison | None,
    *,
    candidate_quality_passed: bool,
    quality_reasons: list[str],
    policy: GatePolicy,
    labelled_days: int = 0,
    n_frauds: int = 0,
    candidate_validation: dict[str, float] | None = None,
    first_model: bool = False,
) -> Verdict:
    checks: list[GateCheck] = []
    if policy.require_data_quality:
        checks.append(
            GateCheck(
                "data_quality",
                candidate_quality_passed,
                "training data quality passed"
                if candidate_quality_passed
                else "training data quality failed: "
                + "; ".join(quality_reasons or ["(no reason)"]),
            )
        )
    if first_model:
        validation = candidate_validation or {}
        for metric, floor in policy.first_model_min.items():
            value = validation.get(metric)
            ok = value is not None and value >= floor
            checks.append(
                GateCheck(
                    f"first_model_{metric}",
                    ok,
                    f"no champion yet: validation {metric} {_num(value)} "
                    + (">=" if ok else "below")
                    + f" the floor {floor:.3f}",
                )
            )
        return _verdict(checks)

    checks.append(
        GateCheck(
            "labelled_days",
            labelled_days >= policy.min_labelled_days,
            f"{labelled_days} labelled day(s) in the out-of-time window "
            f"(minimum {policy.min_labelled_days})",
        )
    )
    checks.append(
        GateCheck(
            "labelled_frauds",
            n_frauds >= policy.min_frauds,
            f"{n_frauds} fraud(s) in the window (minimum {policy.min_frauds})",
        )
    )
    if comparison is None:
        checks.append(
            GateCheck("comparison", False, "no comparison: no labelled out-of-time window")
        )
        return _verdict(checks)

    primary = comparison.get(policy.primary_metric)
    if primary is None or primary.difference is None:
        checks.append(
            GateCheck(
                f"primary_{policy.primary_metric}",
                False,
                f"{policy.primary_metric} cannot be computed on this window",
            )
        )
    else:
        diff = primary.difference
        ci = (
            f" ({comparison.confidence:.0%} CI {_signed(primary.ci_low)}..{_signed(primary.ci_high)})"
            if primary.ci_low is not None
            else ""
        )
        margin_ok = diff >= policy.min_improvement and (diff > 0 or policy.min_improvement > 0)
        ci_ok = primary.ci_low is None or primary.ci_low > 0
        ok = margin_ok and ci_ok
        why = (
            "beats the champion by the required margin"
            if ok
            else (
                f"does not beat the champion by the required margin {policy.min_improvement:.3f}"
                if not margin_ok
                else "the improvement is within noise (the interval includes zero)"
            )
        )
        checks.append(
            GateCheck(
                f"primary_{primary.name}",
                ok,
                f"{primary.name}: candidate {_num(primary.candidate)} vs champion "
                f"{_num(primary.champion)}, {_signed(diff)}{ci} — {why}",
            )
        )
    for metric, tolerance in sorted(policy.max_regression.items()):
        m = comparison.get(metric)
        if m is None or m.difference is None:
            checks.append(GateCheck(f"secondary_{metric}", False, f"{metric} cannot be computed"))
            continue
        ok = m.difference >= -tolerance
        checks.append(
            GateCheck(
                f"secondary_{metric}",
                ok,
                f"{metric}: candidate {_num(m.candidate)} vs champion {_num(m.champion)}, "
                f"{_signed(m.difference)} — "
                + ("within" if ok else "worse than")
                + f" the allowed regression {tolerance:.3f}",
            )
        )
    return _verdict(checks)


def _verdict(checks: list[GateCheck]) -> Verdict:
    ordered = [c for c in checks if not c.passed] + [c for c in checks if c.passed]
    return Verdict(
        passed=all(c.passed for c in checks),
        reasons=tuple(c.detail for c in ordered),
        checks=tuple(checks),
    )
