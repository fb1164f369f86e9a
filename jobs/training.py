"""Training: matured labels -> features -> LightGBM -> a registered challenger with lineage.

The training window is a pair of dates ``[start, end)``. A transaction's
label is the latest label row for it reported at or before
``end + label_delay_days`` (the *label cutoff*); a transaction without a fraud
label by then is legitimate. Because the cutoff is part of the window, training
again on the same window rebuilds the same frame (same fingerprint) even after
newer labels arrive.

The default window ends ``[training] holdout_days`` before the data clock (the
latest event or report in the warehouse) minus the label delay, at midnight,
and spans ``[training] window_days``: the held-out matured days are the
out-of-time window on which the promotion gate compares candidate and champion.
Validation is the latest ``validation_fraction`` of the window in time (never a random split), used for early stopping and the
recorded metrics.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import duckdb
import lightgbm as lgb
import numpy as np
import polars as pl
import pyarrow as pa
from sklearn.metrics import average_precision_score, roc_auc_score

from jobs import logs
from jobs.config import Config, Promotion
from jobs.errors import NotEnoughData
from jobs.features import compute_features, feature_spec, iter_feature_days
from jobs.model_inputs import build_vocab, encode, medians
from jobs.quality import FeatureProfile, QualityReport, check_training_frame
from jobs.training_register import TrainResult, fit_and_register
from jobs.warehouse import data_clock
from jobs.weighted_training import prior_corrected, weighted_volume

log = logs.get("training")

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "max_cat_to_onehot": 8,
    "deterministic": True,
    "force_col_wise": True,
    "verbosity": -1,
}


@dataclass(frozen=True)
class TrainingWindow:
    start: datetime
    end: datetime
    label_cutoff: datetime
    data_clock: datetime

    def to_dict(self) -> dict[str, str]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "label_cutoff": self.label_cutoff.isoformat(),
            "data_clock": self.data_clock.isoformat(),
        }


@dataclass(frozen=True)
class TrainingData:
    window: TrainingWindow
    frame: pl.DataFrame  # keys, features, is_fraud; ordered by event_time
    features: tuple[str, ...]
    categorical: tuple[str, ...]
    label_coverage: float
    fingerprint: str
    warm_up_share: float = 0.0  # rows whose look-back reaches before the warehouse's first row


@dataclass(frozen=True)
class TrainedModel:
    booster: lgb.Booster
    params: dict[str, Any]
    early_stopping: dict[str, Any]  # metric, patience, rounds run, trees kept
    metrics: dict[str, float]
    importance: dict[str, float]
    vocab: dict[str, list[str]]
    medians: dict[str, float]
    quality: QualityReport
    calibrator: Any = None  # reports.calibration.Calibrator, fitted on the validation scores


def resolve_window(
    con: duckdb.DuckDBPyConnection, cfg: Config, start: date | None, end: date | None
) -> TrainingWindow:
    s = cfg.settings
    delay = timedelta(days=s.source.label_delay_days)
    clock = data_clock(con)
    end = end or s.training.end
    start = start or s.training.start
    end_dt = (
        datetime.combine(end, time())
        if end
        else datetime.combine((clock - delay).date(), time())
        - timedelta(days=s.training.holdout_days)
    )
    start_dt = (
        datetime.combine(start, time())
        if start
        else end_dt - timedelta(days=s.training.window_days)
    )
    if start_dt >= end_dt:
        raise NotEnoughData(
            f"empty training window: start {start_dt:%F} is not before end {end_dt:%F}"
        )
    return TrainingWindow(start_dt, end_dt, end_dt + delay, clock)


def load_training_data(
    con: duckdb.DuckDBPyConnection, cfg: Config, window: TrainingWindow
) -> TrainingData:
    """Features for the window joined with the labels known at the label cutoff.

    The features are computed a run of days at a time (``scoring.feature_chunk_size`` rows
    at most), so the sweep's working memory does not grow with the window."""
    spec = feature_spec(cfg)
    chunk = cfg.settings.scoring.feature_chunk_size
    parts = list(iter_feature_days(con, cfg, window.start, window.end, chunk))
    table = (
        pa.concat_tables(parts)
        if parts
        else compute_features(con, cfg, start=window.start, end=window.end)
    )
    del parts
    feats = pl.from_arrow(table)
    assert isinstance(feats, pl.DataFrame)
    labels = pl.from_arrow(
        con.sql(
            "SELECT transaction_id, arg_max(is_fraud, reported_at) AS is_fraud FROM labels "
            "WHERE reported_at <= ? GROUP BY transaction_id",
            params=[window.label_cutoff],
        ).to_arrow_table()
    )
    assert isinstance(labels, pl.DataFrame)
    frame = (
        feats.join(labels, on="transaction_id", how="left")
        .with_columns(pl.col("is_fraud").fill_null(False))
        .sort(["event_time", "transaction_id"])
    )
    matured = window.data_clock - timedelta(days=cfg.settings.source.label_delay_days)
    coverage = (
        float(frame.select((pl.col("event_time") <= matured).mean()).item() or 0.0)
        if frame.height
        else 0.0
    )
    first = con.execute("SELECT min(event_time) FROM transactions").fetchall()[0][0]
    warm_up = (
        float(
            frame.select(
                (pl.col("event_time") < first + timedelta(days=spec.history_days)).mean()
            ).item()
            or 0.0
        )
        if frame.height and first is not None
        else 0.0
    )
    return TrainingData(
        window=window,
        frame=frame,
        features=spec.names,
        categorical=spec.categorical,
        label_coverage=coverage,
        fingerprint=fingerprint(frame, spec.names),
        warm_up_share=warm_up,
    )


def fingerprint(frame: pl.DataFrame, names: tuple[str, ...]) -> str:
    """sha256 of the exact training data: ids, features (in order) and labels."""
    h = hashlib.sha256()
    h.update("\x1f".join(names).encode())
    h.update(str(frame.height).encode())
    for col in ("transaction_id", *names, "is_fraud"):
        series = frame[col]
        h.update(b"\x1d" + col.encode())
        if series.dtype.is_numeric() or series.dtype == pl.Boolean:
            h.update(series.cast(pl.Float64).fill_null(float("nan")).to_numpy().tobytes())
        else:
            values = series.cast(pl.Utf8).fill_null("\x00").to_list()
            h.update("\x1e".join(values).encode())
    return h.hexdigest()


# the gate's primary metric as LightGBM names it; early stopping watches this one alone
STOPPING_METRICS = {"average_precision": "average_precision", "roc_auc": "auc"}


def stopping_metric(promotion: Promotion) -> str:
    """The metric early stopping watches: the gate's primary metric where LightGBM has it
    (average precision otherwise). One metric: with several, LightGBM stops when any stalls."""
    return STOPPING_METRICS.get(promotion.primary_metric, "average_precision")


def lightgbm_params(cfg: Config, scale_pos_weight: float) -> dict[str, Any]:
    params = dict(DEFAULT_PARAMS)
    params["learning_rate"] = cfg.settings.model.learning_rate
    params["metric"] = stopping_metric(cfg.settings.promotion)
    params["seed"] = cfg.settings.training.seed
    params["scale_pos_weight"] = scale_pos_weight
    params.update(cfg.settings.model.params)
    return params


def fit(
    cfg: Config,
    data: TrainingData,
    reference: Mapping[str, FeatureProfile] | None = None,
    *,
    weights: np.ndarray | None = None,
) -> TrainedModel:
    """Train LightGBM with a time-ordered validation split and early stopping.

    ``reference``: the champion's training profile, which the data-quality checks compare
    against (a feature that became missing or constant fails; one that always was, warns).

    ``weights``: each row's weight, in ``data.frame``'s order (a sampled set: its legitimate
    rows weigh 1 / the rate they were kept at, :mod:`jobs.spark.training_sets`). The rows
    then stand for the window they were sampled from, and everything accounts for it:
    LightGBM trains and early-stops on weighted rows (``Dataset(weight=)``), the fraud
    re-weighting is computed from weighted counts, the validation metrics are weighted
    (average precision depends on the fraud rate, so on the sampled rows it would flatter
    the model), the volume checks count weighted rows, and the calibrator is moved to the
    window's fraud rate (:func:`prior_corrected`).
    """
    s = cfg.settings
    frame = data.frame
    names = list(data.features)
    quality = check_training_frame(
        frame,
        names,
        label_coverage=data.label_coverage,
        policy=s.training.quality,
        reference=reference,
        warm_up_share=data.warm_up_share,
    )
    y = frame["is_fraud"].cast(pl.Int8).to_numpy()
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    if w is not None:
        if w.shape != y.shape or not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise ValueError(f"weights: {frame.height} positive finite weights expected")
        quality = weighted_volume(quality, w, y, s.training.quality)
    frauds = int(y.sum())
    if frame.height < 100 or frauds < 2:
        raise NotEnoughData(
            f"cannot train on {frame.height} rows with {frauds} frauds in "
            f"{data.window.start:%F}..{data.window.end:%F}: widen the window or wait for labels"
        )
    n_valid = max(1, round(frame.height * s.training.validation_fraction))
    split = frame.height - n_valid
    vocab = build_vocab(frame[:split], data.categorical)
    x = encode(frame, names, data.categorical, vocab)
    x_train, y_train, x_valid, y_valid = x[:split], y[:split], x[split:], y[split:]
    w_train, w_valid = (None, None) if w is None else (w[:split], w[split:])
    wt = np.ones(split) if w_train is None else w_train
    neg, pos = float(wt[y_train == 0].sum()), float(max(1.0, wt[y_train == 1].sum()))
    # moderate re-weighting: sqrt(neg/pos) keeps scores usable as ranking and thresholdable
    params = lightgbm_params(cfg, round(float(np.sqrt(neg / pos)), 4))
    cat_idx = [names.index(c) for c in data.categorical]
    train_set = lgb.Dataset(
        x_train,
        y_train,
        weight=w_train,
        feature_name=names,
        categorical_feature=cat_idx,
        free_raw_data=True,
    )
    valid_set = lgb.Dataset(x_valid, y_valid, weight=w_valid, reference=train_set)
    rounds_run = [0]

    def count_rounds(env: Any) -> None:
        rounds_run[0] = env.iteration + 1

    callbacks: list[Any] = [
        count_rounds,
        lgb.early_stopping(s.model.early_stopping_rounds, first_metric_only=True, verbose=False),
    ]
    with logs.progress("training", None):
        booster = lgb.train(
            params,
            train_set,
            num_boost_round=s.model.num_boost_round,
            valid_sets=[valid_set],
            valid_names=["validation"],
            callbacks=callbacks,
        )
    rounds = rounds_run[0]
    if booster.best_iteration > 0:
        # keep only the trees early stopping chose, so scoring needs no extra argument
        booster = lgb.Booster(
            model_str=booster.model_to_string(num_iteration=booster.best_iteration)
        )
    pred = booster.predict(x_valid)
    metrics: dict[str, float] = {
        "n_train": float(split),
        "n_valid": float(n_valid),
        "frauds_train": float(y_train.sum()),
        "frauds_valid": float(y_valid.sum()),
        "best_iteration": float(booster.num_trees()),
    }
    stopping = {
        "metric": params["metric"],
        "patience": s.model.early_stopping_rounds,
        "rounds_run": rounds,
        "trees": booster.num_trees(),
        "stopped_early": rounds < s.model.num_boost_round,
    }
    calibrator = None
    if 0 < y_valid.sum() < len(y_valid):
        metrics["average_precision"] = float(
            average_precision_score(y_valid, pred, sample_weight=w_valid)
        )
        metrics["roc_auc"] = float(roc_auc_score(y_valid, pred, sample_weight=w_valid))
        # issue 18: the validation scores as probabilities, for estimating performance
        from reports.calibration import calibration_quality, fit_calibrator

        calibrator = fit_calibrator(pred, y_valid, s.estimation.calibration)
        # on a sample: the fit's quality on the rows it was fitted on, then moved to the window
        metrics.update(calibration_quality(calibrator, pred, y_valid).to_metrics())
        if w_valid is not None:
            calibrator = prior_corrected(calibrator, y_valid, w_valid)
            metrics["n_valid_weighted"] = float(w_valid.sum())
    gains = booster.feature_importance(importance_type="gain")
    importance = {n: float(g) for n, g in zip(names, gains, strict=True)}
    logs.event(
        log,
        "model trained",
        metrics={k: round(v, 4) for k, v in metrics.items()},
        early_stopping=stopping,
    )
    return TrainedModel(
        booster=booster,
        params=params,
        early_stopping=stopping,
        metrics=metrics,
        importance=importance,
        vocab=vocab,
        medians=medians(x_train, names),
        quality=quality,
        calibrator=calibrator,
    )


def build(
    con: duckdb.DuckDBPyConnection, cfg: Config, start: date | None, end: date | None
) -> TrainingData:
    """The training set of the window (the configured one where ``start``/``end`` are None),
    built by DuckDB. The Spark engine builds it with :mod:`jobs.spark.training_sets`."""
    return load_training_data(con, cfg, resolve_window(con, cfg, start, end))


def train_version(
    cfg: Config,
    *,
    start: date | None = None,
    end: date | None = None,
    actor: str | None = None,
) -> TrainResult:
    """Train on the window, register the version with its lineage, and make it the challenger.

    A failing data-quality check does not stop training: the version is
    registered with ``data_quality: failed`` and its reasons, and the gate
    refuses it unless forced. With ``[engine] kind = "spark"`` the set is built by Spark
    (:func:`jobs.spark.training.spark_train_version`); the fit and the registration are
    the same.
    """
    from jobs.runs import ledger
    from jobs.warehouse import configured_warehouse

    if cfg.settings.engine.kind == "spark":
        from jobs.spark.training import spark_train_version

        return spark_train_version(cfg, start=start, end=end, actor=actor)
    with (
        configured_warehouse(cfg) as con,
        ledger(con, "train") as rec,
    ):
        result = fit_and_register(cfg, build(con, cfg, start, end), actor=actor)
        rec.counts["train"] = {"version": result.version, "rows": result.rows}
    return result
