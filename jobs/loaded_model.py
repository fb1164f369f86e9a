"""A registry version made ready to score, and scoring with it: loading (the artifact's
sha256 verified by the registry), checking its features against the pipeline's, and
predicting with the inference policy applied. Scoring, the gate, reports and alert
reasons all take a :class:`LoadedModel`; none of them needs the others to get one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pyarrow as pa

from jobs import logs
from jobs.config import Scoring
from jobs.errors import FeatureMismatch
from jobs.features import FEATURE_VERSION
from jobs.model_inputs import InferencePolicy, apply_policy, encode
from jobs.tree_predict import CompiledTrees, compile_text
from jobs.tree_predict import predict as predict_trees
from registry import Registry

log = logs.get("scoring")


@dataclass(frozen=True)
class LoadedModel:
    """A registry version ready to score: booster plus what encoding needs. ``trees``: the
    booster's trees compiled (:mod:`jobs.tree_predict`, the same scores for less CPU), or
    None where they are not: LightGBM predicts."""

    name: str
    version: int
    role: str
    booster: lgb.Booster
    features: tuple[str, ...]
    categorical: tuple[str, ...]
    vocab: Mapping[str, Sequence[str]]
    medians: Mapping[str, float]
    trees: CompiledTrees | None = field(default=None, repr=False, compare=False)


def compiled(text: str, name: str, version: int, role: str) -> CompiledTrees | None:
    """The model text's trees for :func:`jobs.tree_predict.predict`, or None (said in the
    log) where that does not reproduce LightGBM's scores."""
    trees, why = compile_text(text)
    if trees is None:
        logs.event(
            log, "model scored by LightGBM's predict", "info",
            model=name, version=version, role=role, why=why,
        )  # fmt: skip
    return trees


def inference_policy(s: Scoring) -> InferencePolicy:
    return InferencePolicy(missing=s.missing, fill=dict(s.fill))


def load_version(reg: Registry, model_name: str, version: int, role: str) -> LoadedModel:
    """A registry version, its artifact verified, ready to score."""
    info = reg.get_version(model_name, version)
    lin = info.lineage
    trained_with = int(lin.extra.get("feature_version", 1))
    if trained_with < FEATURE_VERSION:
        logs.event(
            log,
            "model trained on older feature definitions: retrain it",
            level="warning",
            version=info.version,
            role=role,
            feature_version=trained_with,
            current=FEATURE_VERSION,
            changed="merchant_fraud_rate_*: windows now end label_delay_days before t",
        )
    text = reg.load_booster_text(model_name, info.version)  # its sha256 verified
    return LoadedModel(
        name=model_name,
        version=info.version,
        role=role,
        booster=lgb.Booster(model_str=text),
        features=tuple(lin.feature_names),
        categorical=tuple(lin.categorical_features),
        vocab={k: list(v) for k, v in (lin.categorical_vocab or {}).items()},
        medians=dict(lin.extra.get("medians", {})),
        trees=compiled(text, model_name, info.version, role),
    )


def load_model(reg: Registry, model_name: str, alias: str) -> LoadedModel | None:
    """The version an alias points to, or None when the alias is not set."""
    info = reg.get_alias(model_name, alias)
    if info is None:
        return None
    return load_version(reg, model_name, info.version, alias)


def check_features(model: LoadedModel, produced: Sequence[str]) -> None:
    """Fail with the missing and extra names unless the model's features match the pipeline."""
    expected = list(model.features)
    if expected == list(produced):
        return
    missing = [f for f in expected if f not in produced]
    extra = [f for f in produced if f not in expected]
    if not missing and not extra:  # same names, other order
        missing = ["(order differs) " + ", ".join(expected)]
    raise FeatureMismatch(model.version, missing, extra)


def predict(
    model: LoadedModel, feats: pa.Table, policy: InferencePolicy, threads: int
) -> tuple[np.ndarray, np.ndarray]:
    x = encode(feats, model.features, model.categorical, model.vocab, column_major=True)
    x = apply_policy(x, model.features, policy, model.medians)
    if model.trees is not None:
        return predict_trees(model.trees, x, threads), x
    return np.asarray(model.booster.predict(x, num_threads=threads)), x
