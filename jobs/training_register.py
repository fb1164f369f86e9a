"""Registering a trained model: its lineage, the registry version, the challenger alias.

:func:`jobs.training.train_version` is build (:func:`jobs.training.build`, or Spark's
:func:`jobs.spark.training_sets.spark_training_set`), then :func:`fit_and_register`: the
fit (:func:`jobs.training.fit`) and :func:`register`, the same for every engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from jobs import logs
from jobs.config import Config
from jobs.features import FEATURE_VERSION, feature_spec
from jobs.quality import QualityReport, reference_profile
from registry import Registry

if TYPE_CHECKING:
    from jobs.training import TrainedModel, TrainingData, TrainingWindow

log = logs.get("training")


@dataclass(frozen=True)
class TrainResult:
    model: str
    version: int
    window: TrainingWindow
    rows: int
    fraud_rate: float
    fingerprint: str
    metrics: dict[str, float]
    quality: QualityReport
    gate: dict[str, Any] | None = None
    promoted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "window": self.window.to_dict(),
            "rows": self.rows,
            "fraud_rate": self.fraud_rate,
            "fingerprint": self.fingerprint,
            "metrics": self.metrics,
            "data_quality": self.quality.to_dict(),
            "gate": self.gate,
            "promoted": self.promoted,
        }


def register(
    cfg: Config,
    reg: Registry,
    data: TrainingData,
    trained: TrainedModel,
    *,
    actor: str | None = None,
    sampling: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Register the trained model with its lineage and make it the challenger.

    ``sampling`` (a sampled set, :meth:`jobs.spark.training_sets.Sampling.to_dict`): the
    lineage's rows and fraud rate are the window's (``rows_in_window``,
    ``frauds_in_window``), the fingerprint the rows trained on, and ``extra["sampling"]``
    says what was kept and how it was weighted."""
    from jobs.calibration import store_calibrator
    from registry import Lineage, code_version

    s = cfg.settings
    spec = feature_spec(cfg)
    window = data.window
    rows, frauds = data.frame.height, int(data.frame["is_fraud"].sum())
    extra: dict[str, Any] = {}
    if sampling is not None:
        rows, frauds = int(sampling["rows_in_window"]), int(sampling["frauds_in_window"])
        extra["sampling"] = dict(sampling)
        if float(sampling.get("legit_rate", 1.0)) < 1.0:
            extra["sampling"]["calibration"] = (
                "fitted on the sampled validation rows (its quality metrics are theirs), "
                "then moved to the window's fraud rate"
            )
    lineage = Lineage(
        training_start=window.start,
        training_end=window.end,
        label_cutoff=window.label_cutoff,
        rows=rows,
        fraud_rate=frauds / rows,
        fingerprint=data.fingerprint,
        feature_names=list(data.features),
        categorical_features=list(data.categorical),
        categorical_vocab=trained.vocab,
        data_quality=trained.quality.to_dict(),
        params=trained.params,
        metrics=trained.metrics,
        code_version=code_version(),
        extra={
            "medians": trained.medians,
            "importance_gain": trained.importance,
            "label_coverage": data.label_coverage,
            "trees": trained.booster.num_trees(),
            "feature_version": FEATURE_VERSION,
            "label_delay_days": s.source.label_delay_days,
            "feature_descriptions": {n: spec.descriptions.get(n, n) for n in data.features},
            "early_stopping": trained.early_stopping,
            "calibration": store_calibrator(reg, trained.calibrator, s.estimation.calibration),
            **extra,
        },
    )
    info = reg.register_version(
        s.model.name, trained.booster.model_to_string(), lineage, actor=actor
    )
    reg.set_alias(
        s.model.name,
        "challenger",
        info.version,
        actor=actor,
        reason=f"trained on {window.start:%Y-%m-%d}..{window.end:%Y-%m-%d}",
    )
    logs.event(
        log,
        "version registered",
        version=info.version,
        data_quality=trained.quality.status,
        fingerprint=data.fingerprint[:12],
    )
    return TrainResult(
        model=s.model.name,
        version=info.version,
        window=window,
        rows=rows,
        fraud_rate=lineage.fraud_rate,
        fingerprint=data.fingerprint,
        metrics=trained.metrics,
        quality=trained.quality,
    )


def fit_and_register(
    cfg: Config,
    data: TrainingData,
    *,
    actor: str | None = None,
    weights: np.ndarray | None = None,
    sampling: Mapping[str, Any] | None = None,
) -> TrainResult:
    """:func:`fit` (checked against the champion's training profile), then :func:`register`:
    what every engine does with its training set."""
    from jobs.registry_access import open_registry
    from jobs.training import fit

    reg = open_registry(cfg)
    champion = reg.get_alias(cfg.settings.model.name, "champion")
    reference = reference_profile(champion.lineage.data_quality) if champion else None
    trained = fit(cfg, data, reference, weights=weights)
    return register(cfg, reg, data, trained, actor=actor, sampling=sampling)
