"""The champion/challenger lifecycle: compare, promote (gated), rollback, retrain.

``compare`` scores the candidate and the champion on the same out-of-time
window with matured labels (from the candidate's training end to the data
clock minus the label delay, at most ``[promotion] window_days``), so none of it
was used to train the candidate. The decision itself is the pure function
:func:`reports.gate.decide`; this module gathers its inputs, writes the
comparison report, and moves the alias only on a pass (or ``--force`` with a
reason, recorded with who forced it). A refusal changes no alias but is
recorded in the history (kind ``refused``) with its report and verdict.
Promoting the version that is already champion changes nothing. Webhooks fire
after the alias moved and never undo it.

The heavy parts (features, LightGBM, the comparison's metrics) are imported
where the gate runs, so ``rollback`` starts as fast as ``registry list``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs import logs
from jobs.config import Config, Promotion
from jobs.errors import FraudwatchError, PromotionRefused
from jobs.registry_access import actor as default_actor
from jobs.registry_access import open_registry

if TYPE_CHECKING:
    import duckdb
    import polars as pl

    from jobs.loaded_model import LoadedModel
    from jobs.training import TrainResult
    from registry import AliasEvent, Registry
    from reports.gate import GatePolicy, Verdict

log = logs.get("promotion")

UNCHANGED = "unchanged"


@dataclass(frozen=True)
class GateOutcome:
    version: int
    champion_version: int | None
    verdict: Verdict
    report: Path | None
    window_start: datetime | None
    window_end: datetime | None
    # what promote did: promote | force | unchanged (already champion); None for compare
    action: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "champion_version": self.champion_version,
            "passed": self.verdict.passed,
            "action": self.action,
            "reasons": list(self.verdict.reasons),
            "failed_rules": failed_rules(self.verdict),
            "checks": [
                {"name": c.name, "passed": c.passed, "detail": c.detail}
                for c in self.verdict.checks
            ],
            "report": str(self.report) if self.report else None,
            "window": [
                self.window_start.isoformat() if self.window_start else None,
                self.window_end.isoformat() if self.window_end else None,
            ],
        }


def failed_rules(verdict: Verdict) -> list[str]:
    """The names of the gate's rules that failed (e.g. ``data_quality``)."""
    return [c.name for c in verdict.checks if not c.passed]


def marked_reasons(verdict: Verdict) -> list[str]:
    """Every rule, failures first, marked ``FAILED`` or ``passed`` with its name."""
    if not verdict.checks:
        return list(verdict.reasons)
    ordered = [c for c in verdict.checks if not c.passed] + [c for c in verdict.checks if c.passed]
    return [f"{'FAILED' if not c.passed else 'passed'} {c.name}: {c.detail}" for c in ordered]


def metric_win(verdict: Verdict) -> str:
    """The check that says why a passing candidate is better: the primary metric's (or,
    for a first model, its validation metrics')."""
    wins = [
        c.detail
        for c in verdict.checks
        if c.passed and c.name.startswith(("primary_", "first_model_"))
    ]
    return "; ".join(wins) or "; ".join(verdict.reasons[:1])


def _already_champion(version: int) -> GateOutcome:
    from reports.gate import GateCheck, Verdict

    check = GateCheck(
        "already_champion", True, f"version {version} is already the champion: nothing changed"
    )
    verdict = Verdict(passed=True, reasons=(check.detail,), checks=(check,))
    return GateOutcome(version, version, verdict, None, None, None, action=UNCHANGED)


def gate_policy(p: Promotion) -> GatePolicy:
    from reports.gate import GatePolicy

    return GatePolicy(
        primary_metric=p.primary_metric,
        min_improvement=p.min_improvement,
        max_regression=dict(p.max_regression),
        require_data_quality=p.require_data_quality,
        min_labelled_days=p.min_labelled_days,
        min_frauds=p.min_frauds,
    )


def _window(
    con: duckdb.DuckDBPyConnection, cfg: Config, candidate: Any
) -> tuple[datetime, datetime]:
    from jobs.warehouse import data_clock

    clock = data_clock(con)
    end = clock - timedelta(days=cfg.settings.source.label_delay_days)
    start = max(
        candidate.lineage.training_end,
        end - timedelta(days=cfg.settings.promotion.window_days),
    )
    return start, end


def _labelled_frame(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    start: datetime,
    end: datetime,
    models: dict[str, LoadedModel],
) -> pl.DataFrame:
    """The window's transactions with their labels and each model's score (``score_<key>``)."""
    import polars as pl

    from jobs.features import compute_features
    from jobs.loaded_model import inference_policy, predict

    feats = compute_features(con, cfg, start=start, end=end)
    policy = inference_policy(cfg.settings.scoring)
    frame = pl.from_arrow(feats.select(["transaction_id", "event_time", "card_id", "amount"]))
    assert isinstance(frame, pl.DataFrame)
    for key, model in models.items():
        scores, _ = predict(model, feats, policy, cfg.settings.scoring.num_threads)
        frame = frame.with_columns(pl.Series(f"score_{key}", scores))
    labels = pl.from_arrow(
        con.sql(
            "SELECT transaction_id, arg_max(is_fraud, reported_at) AS is_fraud FROM labels "
            "GROUP BY transaction_id"
        ).to_arrow_table()
    )
    assert isinstance(labels, pl.DataFrame)
    return frame.join(labels, on="transaction_id", how="left").with_columns(
        pl.col("is_fraud").fill_null(False)
    )


def evaluate_gate(
    con: duckdb.DuckDBPyConnection, cfg: Config, reg: Registry, version: int
) -> GateOutcome:
    """Run the gate for ``version`` against the current champion and write its report.

    The champion itself is not compared with itself: its outcome says it is champion."""
    import polars as pl

    from jobs.features import feature_spec
    from jobs.loaded_model import load_version
    from jobs.reporting import publish_comparison
    from reports.compare import compare_models
    from reports.gate import decide

    s = cfg.settings
    name = s.model.name
    candidate_info = reg.get_version(name, version)
    quality = candidate_info.lineage.data_quality or {}
    quality_passed = quality.get("status") == "passed"
    quality_reasons = list(quality.get("reasons", []))
    champion_info = reg.get_alias(name, "champion")
    policy = gate_policy(cfg.settings.promotion)
    if champion_info is not None and champion_info.version == version:
        return _already_champion(version)
    if champion_info is None:
        verdict = decide(
            None,
            candidate_quality_passed=quality_passed,
            quality_reasons=quality_reasons,
            policy=policy,
            labelled_days=0,
            n_frauds=0,
            candidate_validation=dict(candidate_info.lineage.metrics),
            first_model=True,
        )
        report = publish_comparison(cfg, candidate_info, None, None, verdict, None, None)
        return GateOutcome(version, None, verdict, report, None, None)

    start, end = _window(con, cfg, candidate_info)
    spec = feature_spec(cfg)
    candidate = load_version(reg, name, version, "candidate")
    champion = load_version(reg, name, champion_info.version, "champion")
    for m in (candidate, champion):
        if list(m.features) != list(spec.names):
            raise FraudwatchError(
                f"version {m.version} was trained on other features than the pipeline makes now"
            )
    comparison = None
    labelled_days = 0
    n_frauds = 0
    if end > start:
        frame = _labelled_frame(
            con, cfg, start, end, {"candidate": candidate, "champion": champion}
        )
        labelled_days = frame.select(pl.col("event_time").dt.date().n_unique()).item()
        n_frauds = int(frame["is_fraud"].sum())
        if frame.height and n_frauds:
            comparison = compare_models(
                frame,
                threshold=s.alerts.threshold,
                k=s.alerts.daily_budget,
                metrics=sorted({policy.primary_metric, *policy.max_regression}),
                bootstrap_samples=s.promotion.bootstrap_samples,
                confidence=s.promotion.confidence,
                seed=s.training.seed,
            )
    verdict = decide(
        comparison,
        candidate_quality_passed=quality_passed,
        quality_reasons=quality_reasons,
        policy=policy,
        labelled_days=labelled_days,
        n_frauds=n_frauds,
        candidate_validation=dict(candidate_info.lineage.metrics),
    )
    report = publish_comparison(cfg, candidate_info, champion_info, comparison, verdict, start, end)
    return GateOutcome(version, champion_info.version, verdict, report, start, end)


def promote(
    cfg: Config,
    version: int,
    *,
    force: bool = False,
    reason: str = "",
    actor: str | None = None,
) -> GateOutcome:
    """Gate ``version``; on a pass (or force) move ``champion`` to it.

    The version that is already champion: nothing changes (``action`` ``unchanged``).
    A refusal is recorded in the alias history (kind ``refused``, with the gate's
    report and verdict) and raises PromotionRefused; the alias stays where it was.
    """
    from jobs.warehouse import engine_warehouse

    if force and not reason.strip():
        raise FraudwatchError("--force needs --reason TEXT: say why the gate is overridden")
    reg = open_registry(cfg)
    name = cfg.settings.model.name
    who = actor or default_actor(cfg.settings.registry)
    reg.get_version(name, version)  # an unknown version fails before any work
    champion = reg.get_alias(name, "champion")
    if champion is not None and champion.version == version:
        logs.event(log, "already champion", version=version)
        return _already_champion(version)
    with engine_warehouse(cfg) as con:  # what the engine wrote: Spark's tables too
        outcome = evaluate_gate(con, cfg, reg, version)
    verdict = outcome.verdict
    report = str(outcome.report) if outcome.report else None
    if not verdict.passed and not force:
        failed = failed_rules(verdict)
        reg.record_refusal(
            name,
            "champion",
            version,
            actor=who,
            reason="gate refused: " + ", ".join(failed),
            report=report,
            verdict=outcome.to_dict(),
        )
        logs.event(log, "promotion refused", version=version, failed=failed, report=report)
        raise PromotionRefused(version, marked_reasons(verdict), report, failed=failed)
    kind = "promote" if verdict.passed else "force"
    if verdict.passed:
        text = "; ".join(t for t in (reason.strip(), "gate passed: " + metric_win(verdict)) if t)
    else:
        text = f"{reason.strip()} (forced; gate failed: {', '.join(failed_rules(verdict))})"
    reg.set_alias(
        name,
        "champion",
        version,
        actor=who,
        reason=text,
        kind=kind,
        report=report,
        verdict=outcome.to_dict(),
    )
    challenger = reg.get_alias(name, "challenger")
    if challenger is not None and challenger.version == version:
        reg.clear_alias(name, "challenger", actor=who, reason=f"promoted to champion ({kind})")
    logs.event(log, "promoted", version=version, kind=kind, report=report)
    return GateOutcome(
        outcome.version,
        outcome.champion_version,
        verdict,
        outcome.report,
        outcome.window_start,
        outcome.window_end,
        action=kind,
    )


def rollback(cfg: Config, *, reason: str = "", actor: str | None = None) -> AliasEvent:
    """Restore the previous champion from the alias history."""
    reg = open_registry(cfg)
    return reg.rollback(
        cfg.settings.model.name,
        "champion",
        actor=actor or default_actor(cfg.settings.registry),
        reason=reason or "rollback",
    )


def retrain(cfg: Config) -> TrainResult:
    """The scheduled retrain job: train on the latest window, then gate and promote if
    ``[promotion] auto`` (it lives here, by the gate, so training never imports promotion)."""
    from dataclasses import replace

    from jobs.training import train_version

    result = train_version(cfg)
    if not cfg.settings.promotion.auto:
        return result
    try:
        outcome = promote(cfg, result.version, reason="scheduled retrain")
        return replace(result, gate=outcome.to_dict(), promoted=True)
    except PromotionRefused as exc:
        gate = {
            "passed": False,
            "reasons": exc.reasons,
            "failed_rules": exc.failed,
            "report": exc.report,
        }
        return replace(result, gate=gate, promoted=False)
