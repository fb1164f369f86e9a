"""The champion/challenger lifecycle: compare, promote (gated), rollback, retrain.

``compare`` scores the candidate and the champion on the same out-of-time
window with matured labels (from the candidate's training end to the data
clock minus the label delay, at most ``[promotion] window_days``), so none of it
was used to train the candidate. The decision itself is the pure function
:func:`reports.gate.decide`; this module gathers its inputs, writes the
comparison report, and moves the alias only on a pass (or ``--force`` with a
reason, recorded with who forced it). Webhooks fire after the alias moved and
never undo it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from jobs import logs
from jobs.config import Config
from jobs.errors import FraudwatchError, NotEnoughData, PromotionRefused
from jobs.features import compute_features, feature_spec
from jobs.registry_access import open_registry
from jobs.scoring import LoadedModel, inference_policy, load_version, predict
from jobs.training import data_clock
from registry import Registry
from reports.compare import compare_models
from reports.gate import GatePolicy, Verdict, decide

log = logs.get("promotion")


@dataclass(frozen=True)
class GateOutcome:
    version: int
    champion_version: int | None
    verdict: Verdict
    report: Path | None
    window_start: datetime | None
    window_end: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "champion_version": self.champion_version,
            "passed": self.verdict.passed,
            "reasons": list(self.verdict.reasons),
            "report": str(self.report) if self.report else None,
            "window": [
                self.window_start.isoformat() if self.window_start else None,
                self.window_end.isoformat() if self.window_end else None,
            ],
        }


def gate_policy(cfg: Config) -> GatePolicy:
    p = cfg.settings.promotion
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
    clock = data_clock(con)
    if clock is None:
        raise NotEnoughData("the warehouse is empty")
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
    feats = compute_features(con, cfg, start=start, end=end)
    policy = inference_policy(cfg)
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
    """Run the gate for ``version`` against the current champion and write its report."""
    from jobs.reporting import publish_comparison

    s = cfg.settings
    name = s.model.name
    candidate_info = reg.get_version(name, version)
    quality = candidate_info.lineage.data_quality or {}
    quality_passed = quality.get("status") == "passed"
    quality_reasons = list(quality.get("reasons", []))
    champion_info = reg.get_alias(name, "champion")
    policy = gate_policy(cfg)
    if champion_info is None or champion_info.version == version:
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
    """Gate ``version``; on a pass (or force) move ``champion`` to it. Raises PromotionRefused."""
    from jobs.warehouse import configured_warehouse

    if force and not reason.strip():
        raise FraudwatchError("--force needs --reason TEXT: say why the gate is overridden")
    reg = open_registry(cfg)
    name = cfg.settings.model.name
    with configured_warehouse(cfg) as con:
        outcome = evaluate_gate(con, cfg, reg, version)
    verdict = outcome.verdict
    if not verdict.passed and not force:
        raise PromotionRefused(version, list(verdict.reasons), str(outcome.report))
    kind = "promote" if verdict.passed else "force"
    text = reason or ("gate passed: " + "; ".join(verdict.reasons[:1]))
    reg.set_alias(
        name,
        "champion",
        version,
        actor=actor,
        reason=text,
        kind=kind,
        report=str(outcome.report) if outcome.report else None,
        verdict=outcome.to_dict(),
    )
    challenger = reg.get_alias(name, "challenger")
    if challenger is not None and challenger.version == version:
        reg.clear_alias(name, "challenger", actor=actor, reason=f"promoted to champion ({kind})")
    logs.event(log, "promoted", version=version, kind=kind, report=str(outcome.report))
    return outcome


def rollback(cfg: Config, *, reason: str = "", actor: str | None = None) -> Any:
    """Restore the previous champion from the alias history."""
    reg = open_registry(cfg)
    return reg.rollback(
        cfg.settings.model.name, "champion", actor=actor, reason=reason or "rollback"
    )
