"""Scoring by Spark: the champion (and the challenger in shadow) applied in Arrow batches.

The driver loads each model from the registry, whose artifact's sha256 it verifies
(:meth:`registry.Registry.load_booster_text`), checks its features against the pipeline's
(:func:`jobs.loaded_model.check_features`), and ships to the executors the model's
LightGBM *text* with that sha256 and what encoding needs (feature names, categorical
vocabulary, medians): no pickled model. Each Python worker verifies the text's sha256
again before it parses it (once per worker and model), then scores the features of its
partition in Arrow batches (``mapInArrow``) with :func:`jobs.loaded_model.predict`, the
very function the DuckDB path scores with: same features, same matrix, same scores.

What is scored: the transactions no champion has scored (and that this champion has not
scored in shadow), as :mod:`jobs.scoring` picks them. Scores are keyed by
(transaction_id, model_name, model_version): before they are committed, those already in
the ``scores`` table are left out, under the tables' writer lock, so a re-run (after a
crash, or twice) never duplicates one. All of a run's scores go in one commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from jobs import logs
from jobs.config import Config
from jobs.errors import FeatureMismatch, NoChampion
from jobs.features import FeatureSpec, feature_spec
from jobs.loaded_model import (
    LoadedModel,
    check_features,
    compiled,
    inference_policy,
    load_model,
)
from jobs.model_inputs import InferencePolicy
from jobs.spark.features import spark_features
from jobs.spark.ingest import read_table
from jobs.spark.profiles import PROFILE_SCHEMA, PartitionProfiles, day_profiles, store_day_profiles
from jobs.spark.tables import Commit, recover
from jobs.warehouse_access import writer_lock
from registry import Registry

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logs.get("scoring")

SCORE_SCHEMA = "transaction_id string, model_version int, role string, score double"
# what a scoring task yields: its scores, then its day profiles (jobs.spark.profiles)
OUT_SCHEMA = f"{SCORE_SCHEMA}, {PROFILE_SCHEMA}"
_OUT = pa.schema(
    [
        ("transaction_id", pa.string()),
        ("model_version", pa.int32()),
        ("role", pa.string()),
        ("score", pa.float64()),
        ("day", pa.date32()),
        ("column_name", pa.string()),
        ("sketch", pa.string()),
    ]
)


def _out(columns: dict[str, pa.Array], n: int) -> pa.RecordBatch:
    """A batch of the task's output schema: the given columns, the others null."""
    return pa.RecordBatch.from_arrays(
        [columns.get(f.name, pa.nulls(n, f.type)) for f in _OUT], schema=_OUT
    )


@dataclass(frozen=True)
class ShippedModel:
    """What an executor needs to score with a version: its text, verified by sha256 there."""

    name: str
    version: int
    role: str
    text: str
    sha256: str
    features: tuple[str, ...]
    categorical: tuple[str, ...]
    vocab: dict[str, list[str]]
    medians: dict[str, float]

    @classmethod
    def of(cls, reg: Registry, model: LoadedModel) -> ShippedModel:
        info = reg.get_version(model.name, model.version)
        return cls(
            name=model.name,
            version=model.version,
            role=model.role,
            text=reg.load_booster_text(model.name, model.version),  # verified here
            sha256=info.artifact_sha256,
            features=model.features,
            categorical=model.categorical,
            vocab={k: list(v) for k, v in model.vocab.items()},
            medians=dict(model.medians),
        )

    def load(self) -> LoadedModel:
        """The model, once its text is verified (an executor trusts nothing it was sent)."""
        import lightgbm as lgb

        actual = hashlib.sha256(self.text.encode()).hexdigest()
        if actual != self.sha256:
            raise ValueError(
                f"{self.name} version {self.version}: the model text shipped to this executor "
                f"has sha256 {actual}, the registry's is {self.sha256}; refusing to score"
            )
        booster = lgb.Booster(model_str=self.text)
        return LoadedModel(
            self.name,
            self.version,
            self.role,
            booster,
            self.features,
            self.categorical,
            self.vocab,
            self.medians,
            trees=compiled(self.text, self.name, self.version, self.role),
        )


_LOADED: dict[str, LoadedModel] = {}  # per Python worker: parsed once per model


def score_batches(
    models: list[ShippedModel], policy: InferencePolicy, threads: int, spec: FeatureSpec
) -> Any:  # the mapInArrow function
    """Each batch of features -> one row per (transaction, model): its score; then the
    partition's day profiles of the features and the champion's scores."""
    from jobs.loaded_model import predict

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        loaded = []
        for m in models:
            if m.sha256 not in _LOADED:
                _LOADED[m.sha256] = m.load()
            loaded.append(_LOADED[m.sha256])
        profiles = PartitionProfiles(spec)
        for batch in batches:
            if batch.num_rows == 0:
                continue
            feats = pa.Table.from_batches([batch])
            n = batch.num_rows
            for model in loaded:
                scores, _ = predict(model, feats, policy, threads)
                if model is loaded[0]:
                    profiles.add(feats, scores)
                cols = {
                    "transaction_id": feats["transaction_id"].combine_chunks(),
                    "model_version": pa.array([model.version] * n, pa.int32()),
                    "role": pa.array([model.role] * n, pa.string()),
                    "score": pa.array(scores, pa.float64()),
                }
                yield _out(cols, n)
        sketches = profiles.batch()
        if sketches.num_rows:
            yield _out(
                {c: sketches.column(c) for c in ("day", "column_name", "sketch")},
                sketches.num_rows,
            )

    return run


@dataclass
class SparkScoreResult:
    champion_version: int | None = None
    challenger_version: int | None = None
    scored: int = 0
    shadow_scored: int = 0
    shadow_error: str | None = None
    alerts_created: int = 0
    profiled_days: int = 0  # days whose feature profiles this run stored
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _models(cfg: Config, reg: Registry, result: SparkScoreResult) -> list[LoadedModel]:
    name = cfg.settings.model.name
    spec = feature_spec(cfg)
    champion = load_model(reg, name, "champion")
    if champion is None:
        raise NoChampion(name)
    check_features(champion, spec.names)
    result.champion_version = champion.version
    models = [champion]
    challenger = load_model(reg, name, "challenger")
    if challenger is not None and challenger.version != champion.version:
        try:
            check_features(challenger, spec.names)
            result.challenger_version = challenger.version
            models.append(challenger)
        except FeatureMismatch as exc:
            result.shadow_error = str(exc)
            logs.event(log, "challenger skipped in shadow", error=str(exc))
    return models


def unscored(name: str, transactions: DataFrame, scores: DataFrame, champion: int) -> DataFrame:
    """The ids no champion has scored, nor this champion in shadow."""
    from pyspark.sql import functions as F

    done = scores.filter(
        (F.col("model_name") == name)
        & ((F.col("role") == "champion") | (F.col("model_version") == champion))
    ).select("transaction_id")
    return transactions.select("transaction_id").join(done, "transaction_id", "left_anti")


def spark_score(spark: SparkSession, cfg: Config, reg: Registry, run_id: str) -> SparkScoreResult:
    """Score the champion's backlog (challenger in shadow) into the ``scores`` table."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from jobs.runs import utcnow

    result = SparkScoreResult()
    models = _models(cfg, reg, result)
    shipped = [ShippedModel.of(reg, m) for m in models]
    name = cfg.settings.model.name
    with writer_lock(cfg.spark_warehouse / "tables"):
        recover(cfg.spark_warehouse)
        tx, labels = read_table(spark, cfg, "transactions"), read_table(spark, cfg, "labels")
        scores = read_table(spark, cfg, "scores")
        todo = unscored(cfg.settings.model.name, tx, scores, models[0].version)
        feats = spark_features(cfg, tx, labels, todo).persist(StorageLevel.MEMORY_AND_DISK)
        fn = score_batches(
            shipped,
            inference_policy(cfg.settings.scoring),
            cfg.settings.scoring.num_threads,
            feature_spec(cfg),
        )
        out = feats.mapInArrow(fn, OUT_SCHEMA).persist(StorageLevel.MEMORY_AND_DISK)
        new = out.filter(F.col("transaction_id").isNotNull()).select(
            "transaction_id", "model_version", "role", "score"
        )
        mine = scores.filter(F.col("model_name") == name).select("transaction_id", "model_version")
        new = new.join(mine, ["transaction_id", "model_version"], "left_anti")
        new = new.select(
            "transaction_id",
            F.lit(name).alias("model_name"),
            "model_version",
            "role",
            "score",
            F.lit(utcnow().isoformat(sep=" ")).cast("timestamp_ntz").alias("scored_at"),
            F.lit(run_id).alias("run_id"),
        ).persist(StorageLevel.MEMORY_AND_DISK)
        commit = Commit.begin(cfg.spark_warehouse)
        try:
            new.write.partitionBy("model_version").parquet(str(commit.staging("scores")))
            for role, n in new.groupBy("role").count().collect():
                if role == "champion":
                    result.scored = int(n)
                else:
                    result.shadow_scored = int(n)
            commit.commit()
        except BaseException:
            commit.abandon()
            raise
        hot = new.filter(
            (F.col("role") == "champion") & (F.col("score") >= cfg.settings.alerts.threshold)
        ).select("transaction_id")
        hot_feats = feats.join(hot, "transaction_id", "left_semi").toArrow()
        latest = tx.agg(F.max("event_time")).first()
        days = day_profiles(out.filter(F.col("column_name").isNotNull()))
        new.unpersist()
        out.unpersist()
        feats.unpersist()
    result.profiled_days = store_day_profiles(
        cfg, days, model_name=name, model_version=models[0].version, run_id=run_id
    )
    result.alerts_created = _alerts(
        cfg, models[0], hot_feats, latest[0] if latest else None, run_id
    )
    logs.event(log, "scoring done", **result.to_dict())
    return result


def _alerts(cfg: Config, champion: LoadedModel, feats: pa.Table, latest: Any, run_id: str) -> int:
    """Alerts for the champion's rows at or above the threshold, created on the driver by
    :func:`jobs.alerting.create_alerts` in the DuckDB warehouse (its ``alerts`` outbox), with
    the reasons :mod:`jobs.reasons` gives: the same policy and budget as the DuckDB path."""
    import numpy as np

    from jobs.alerting import create_alerts
    from jobs.loaded_model import predict
    from jobs.reasons import explainer
    from jobs.scoring import _alert_candidates  # the DuckDB path's, reused as it is
    from jobs.warehouse import configured_warehouse

    if feats.num_rows == 0:
        return 0
    s = cfg.settings
    feats = feats.sort_by([("event_time", "ascending"), ("transaction_id", "ascending")])
    scores, x = predict(
        champion, feats, inference_policy(cfg.settings.scoring), s.scoring.num_threads
    )
    times = feats["event_time"].to_numpy()
    recent = np.ones(len(times), dtype=bool)
    if latest is not None:
        after = np.datetime64(latest - timedelta(days=s.alerts.max_age_days))
        recent = np.asarray(times >= after, dtype=bool)
    hot = np.flatnonzero((scores >= s.alerts.threshold) & recent)
    if not len(hot):
        return 0
    candidates = _alert_candidates(feats, hot, scores, champion)
    spec = feature_spec(cfg)
    explain = explainer(champion, candidates, x[hot], spec.descriptions, s.scoring.num_threads)
    with configured_warehouse(cfg) as con:
        created = create_alerts(con, cfg.settings.alerts, candidates, run_id, explain)
    return int(created.created)
