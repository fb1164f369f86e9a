"""Scoring: every transaction no champion has scored yet, in bounded batches.

A newly promoted champion takes over where the previous one stopped: it scores
the transactions that no champion scored (and that it has not scored itself,
e.g. in shadow), so a promotion never re-alerts on old traffic.

The backlog is taken oldest first, ``[scoring] feature_chunk_size`` rows at a
time, whose features one query computes with the one SQL definition (so the
history is read once per chunk); then for each batch of ``[scoring]
batch_size`` rows of the chunk the champion scores them,
the challenger (if any) scores the same rows in shadow, and the scores and the
champion's alerts for the batch are written in ONE warehouse transaction. The
writes happen on a thread of their own (:class:`BatchWriter`), in order, while
the models score the next batch: a batch's writes are single-threaded work that
would otherwise leave a core idle. A crash therefore loses at most the two
batches in flight (one being written, one scored), and a re-run picks up
exactly the rows not yet scored: scores are keyed by
(transaction_id, model_name, model_version) and never duplicated. Memory is
bounded by the chunk and batch sizes (two batches at a time), not by the backlog.

Analysts read the warehouse while a stage scores (:mod:`jobs.warehouse_windows`): the
backlog and each chunk's features are found with the file attached read-only (the
backlog and the chunk's ids are temp tables of the stage's own in-memory connection,
which outlive the window), and the file is attached read-write only to write one
batch's transaction, a fraction of a second; models predict with the file closed.

Each batch's features (computed anyway) and champion scores are sketched per
event day and written with the batch (:mod:`jobs.profiles`), so the drift
report reads small profiles instead of recomputing the window's features.

Alert reasons (:mod:`jobs.reasons`) are computed only for the rows that become
alerts: the policy picks them among the rows at or above the threshold, within
the daily budget, and explaining every row above the threshold cost more than
scoring them.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from jobs import logs
from jobs.alerting import create_alerts
from jobs.config import CANONICAL, Config
from jobs.errors import FeatureMismatch, NoChampion
from jobs.features import FeatureSpec, compute_features, feature_spec
from jobs.loaded_model import (
    LoadedModel,
    check_features,
    inference_policy,
    load_model,
    predict,
)
from jobs.model_inputs import InferencePolicy
from jobs.profiles import batch_profiles, write_profiles
from jobs.reasons import explainer
from jobs.runs import utcnow
from jobs.scoring_writer import BatchWriter, ScoredBatch
from jobs.warehouse import transaction
from jobs.warehouse_windows import Access, access_of
from registry import Registry

log = logs.get("scoring")


@dataclass
class ScoreResult:
    champion_version: int | None = None
    challenger_version: int | None = None
    scored: int = 0
    shadow_scored: int = 0
    batches: int = 0
    alerts_created: int = 0
    above_threshold: int = 0
    stale_above_threshold: int = 0  # above threshold but older than alerts.max_age_days
    shadow_error: str | None = None
    # the stage's windows on the warehouse file (jobs.warehouse_windows.WindowStats)
    windows: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # where the stage's time went: finding the backlog, the feature queries, the models
    # (champion and challenger), then on the writer thread, alongside the next batch's
    # predict, writing (alerts and their reasons included) and "profile": waiting for the
    # day profiles for the reports, sketched beside the inserts; "write_wait": the models
    # waiting for the writer (one batch in flight)
    seconds: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(
            ("backlog", "features", "predict", "profile", "write", "write_wait"), 0.0
        )
    )
    _clock: logs.Laps = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._clock = logs.Laps(self.seconds)

    def lap(self, step: str) -> None:
        """Add the time since the last lap (or since this result was made) to ``step``."""
        self._clock.lap(step)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


# The scores that can be of some rows: those in the rows' id range and time range (a score
# carries its transaction's event time, schema v9; NULL on one written by hand). The time
# range is what bounds the search when ids are random (UUIDs: the id range is the whole
# table); the id range, when the rows arrived late. Parameters: min and max id, min and max
# event time.
SAME_ROWS = "transaction_id BETWEEN ? AND ? AND (event_time BETWEEN ? AND ? OR event_time IS NULL)"


def _unscored(con: duckdb.DuckDBPyConnection, model: LoadedModel) -> tuple[int, datetime | None]:
    """Collect the rows no champion has scored into ``fw_unscored``, oldest first.

    Only the transactions ingested after the model's ``scoring_state.scored_through``
    can be unscored (ingest stamps ``ingested_at`` in increasing order), so the search
    reads the new rows and the scores of their time range (:data:`SAME_ROWS`), not the
    whole history. Returns the count and the mark to record once they are all scored: the
    latest ``ingested_at`` now, since every row found is scored before the mark is recorded.
    """
    mark = con.execute("SELECT max(ingested_at) FROM transactions").fetchall()[0][0]
    state = con.execute(
        "SELECT scored_through FROM scoring_state WHERE model_name = ?", [model.name]
    ).fetchall()
    through = state[0][0] if state else None
    new_rows = "transactions WHERE ?::TIMESTAMP IS NULL OR ingested_at > ?"
    bounds = con.execute(
        "SELECT min(transaction_id), max(transaction_id), min(event_time), max(event_time) "
        f"FROM {new_rows}",
        [through, through],
    ).fetchall()[0]
    con.execute("DROP TABLE IF EXISTS temp.fw_unscored")
    con.execute(
        "CREATE TEMP TABLE fw_unscored AS "
        f"SELECT t.transaction_id, t.event_time, t.card_key FROM (SELECT * FROM {new_rows}) t "
        "ANTI JOIN (SELECT transaction_id FROM scores WHERE model_name = ? "
        f"AND (role = 'champion' OR model_version = ?) AND {SAME_ROWS}) s "
        "USING (transaction_id) ORDER BY t.event_time, t.transaction_id",
        [through, through, model.name, model.version, *bounds],
    )
    return int(con.execute("SELECT count(*) FROM fw_unscored").fetchall()[0][0]), mark


def _record_scored_through(
    con: duckdb.DuckDBPyConnection, model: LoadedModel, mark: datetime | None, run_id: str
) -> None:
    if mark is None:
        return
    con.execute(
        "INSERT INTO scoring_state VALUES (?, ?, ?, ?) ON CONFLICT (model_name) DO UPDATE "
        "SET scored_through = excluded.scored_through, updated_at = excluded.updated_at, "
        "run_id = excluded.run_id",
        [model.name, mark, utcnow(), run_id],
    )


def _with_card_keys(con: duckdb.DuckDBPyConnection, chunk: pa.Table) -> pa.Table:
    """The chunk with each row's ``card_key`` (from ``fw_batch``, NULL for a transaction not
    keyed yet) for its scores to carry (schema v9). Both are in (event_time,
    transaction_id) order: the keys are taken as they come when the ids line up, by id
    otherwise."""
    keys = con.sql(
        "SELECT transaction_id, card_key FROM fw_batch ORDER BY event_time, transaction_id"
    ).to_arrow_table()
    if keys["transaction_id"].equals(chunk["transaction_id"]):
        return chunk.append_column("card_key", keys["card_key"])
    lookup = dict(
        zip(keys["transaction_id"].to_pylist(), keys["card_key"].to_pylist(), strict=True)
    )
    found = [lookup.get(i) for i in chunk["transaction_id"].to_pylist()]
    return chunk.append_column("card_key", pa.array(found, type=pa.int32()))


def _write_scores(
    con: duckdb.DuckDBPyConnection,
    model: LoadedModel,
    feats: pa.Table,
    scores: np.ndarray,
    run_id: str,
) -> None:
    """The batch's scores, each with its transaction's event time, card key and amount."""
    batch = pa.table(
        {
            "transaction_id": feats["transaction_id"],
            "score": pa.array(scores, type=pa.float64()),
            "event_time": feats["event_time"],
            "card_key": feats["card_key"],
            "amount": feats["amount"],
        }
    )
    ids, times = pc.min_max(batch["transaction_id"]), pc.min_max(batch["event_time"])
    con.register("fw_new_scores", batch)
    try:
        # the batch's ranges let DuckDB skip the row groups of scores holding none of its ids
        con.execute(
            "INSERT INTO scores (transaction_id, model_name, model_version, role, score, "
            "scored_at, run_id, event_time, card_key, amount) "
            "SELECT n.transaction_id, ?, ?, ?, n.score, ?, ?, n.event_time, n.card_key, n.amount "
            "FROM fw_new_scores n ANTI JOIN (SELECT transaction_id FROM scores "
            f"WHERE model_name = ? AND model_version = ? AND {SAME_ROWS}) s "
            "USING (transaction_id)",
            [
                model.name,
                model.version,
                model.role,
                utcnow(),
                run_id,
                model.name,
                model.version,
                ids["min"].as_py(),
                ids["max"].as_py(),
                times["min"].as_py(),
                times["max"].as_py(),
            ],
        )
    finally:
        con.unregister("fw_new_scores")


def score_pending(
    con: duckdb.DuckDBPyConnection | Access, cfg: Config, reg: Registry, run_id: str
) -> ScoreResult:
    """Score the champion's backlog (challenger in shadow) and create the alerts, through
    short windows on the warehouse (a connection held by the caller is held throughout)."""
    access = access_of(con)
    s = cfg.settings
    name = s.model.name
    champion = load_model(reg, name, "champion")
    if champion is None:
        raise NoChampion(name)
    spec = feature_spec(cfg)
    check_features(champion, spec.names)
    challenger = load_model(reg, name, "challenger")
    result = ScoreResult(champion_version=champion.version)
    if challenger is not None and challenger.version == champion.version:
        challenger = None
    if challenger is not None:
        try:
            check_features(challenger, spec.names)
            result.challenger_version = challenger.version
        except FeatureMismatch as exc:
            result.shadow_error = str(exc)
            logs.event(log, "challenger skipped in shadow", error=str(exc))
            challenger = None

    with access.reading() as wh:
        latest = wh.execute("SELECT max(event_time) FROM transactions").fetchall()[0][0]
        total, mark = _unscored(wh, champion)
    scorer = BatchScorer(
        cfg=cfg,
        champion=champion,
        challenger=challenger,
        policy=inference_policy(cfg.settings.scoring),
        descriptions=spec.descriptions,
        spec=spec,
        alert_after=(latest - timedelta(days=s.alerts.max_age_days)) if latest else None,
        run_id=run_id,
    )
    result.lap("backlog")
    batch_size, chunk_size = s.scoring.batch_size, s.scoring.feature_chunk_size
    logs.event(log, "scoring backlog", rows=total, champion=champion.version, batch_size=batch_size)
    with logs.progress("scoring", total) as bar, BatchWriter(scorer, access, result) as writer:
        for offset in range(0, total, chunk_size):
            writer.drain()  # the chunk's read window never meets a batch's write window
            result.lap("write_wait")
            with access.reading() as wh:
                wh.execute("DROP TABLE IF EXISTS temp.fw_batch")
                wh.execute(
                    # with their times: the features search only that time range for them
                    "CREATE TEMP TABLE fw_batch AS SELECT transaction_id, event_time, card_key "
                    "FROM fw_unscored "
                    "ORDER BY event_time, transaction_id LIMIT ? OFFSET ?",
                    [chunk_size, offset],
                )
                chunk = _with_card_keys(wh, compute_features(wh, cfg, ids_table="fw_batch"))
            result.lap("features")
            for start in range(0, chunk.num_rows, batch_size):
                # nothing of this chunk (a slice keeps its whole chunk alive) may be held
                # here once the writer is drained, while the next chunk's query runs: a 5M
                # backlog peaked at 1,421 MB when the last batch stayed a local, against
                # 1,034 MB for 1M rows
                batch = scorer.predict(chunk.slice(start, batch_size))
                result.lap("predict")
                writer.submit(batch, on_written=bar.update)
                del batch
                result.lap("write_wait")
            del chunk
        writer.drain()
        result.lap("write_wait")
    if mark is not None:
        with access.writing("scoring state") as wh:
            _record_scored_through(wh, champion, mark, run_id)
    access.con.execute("DROP TABLE IF EXISTS temp.fw_unscored")
    access.con.execute("DROP TABLE IF EXISTS temp.fw_batch")
    result.windows = access.stats.to_dict()
    logs.event(log, "scoring done", **{k: v for k, v in result.to_dict().items() if k != "notes"})
    return result


@dataclass(frozen=True)
class BatchScorer:
    """Scores one batch of features and writes its scores and alerts in one transaction."""

    cfg: Config
    champion: LoadedModel
    challenger: LoadedModel | None
    policy: InferencePolicy
    descriptions: Mapping[str, str]
    spec: FeatureSpec  # what the day profiles sketch (jobs.profiles)
    alert_after: datetime | None  # rows older than this never alert (alerts.max_age_days)
    run_id: str

    def predict(self, feats: pa.Table) -> ScoredBatch:
        """The models' scores of a batch and its alert candidates (no warehouse)."""
        champion, challenger = self.champion, self.challenger
        threads = self.cfg.settings.scoring.num_threads
        scores, x = predict(champion, feats, self.policy, threads)
        shadow = predict(challenger, feats, self.policy, threads)[0] if challenger else None
        recent = _recent_mask(feats, self.alert_after)
        above = scores >= self.cfg.settings.alerts.threshold
        hot = np.flatnonzero(above & recent)
        return ScoredBatch(
            feats=feats,
            scores=scores,
            shadow=shadow,
            hot=hot,
            x_hot=x[hot],
            stale=int((above & ~recent).sum()),
        )

    def write(self, access: Access, b: ScoredBatch, result: ScoreResult, clock: logs.Laps) -> None:
        """A batch's scores and alerts (their reasons computed for the rows the policy picks)
        and its day profiles, in one transaction. The profiles are sketched on a thread of
        their own while DuckDB inserts the scores (both release the GIL): one after the
        other, the writer took longer than the next batch's predict, which waited for it."""
        champion, challenger = self.champion, self.challenger
        threads = self.cfg.settings.scoring.num_threads
        with ThreadPoolExecutor(1, thread_name_prefix="fw-profile") as beside:
            # the rows' features are at hand: sketch them per day for the drift reports
            sketched = beside.submit(batch_profiles, b.feats, b.scores, self.spec)
            candidates = _alert_candidates(b.feats, b.hot, b.scores, champion)
            explain = explainer(champion, candidates, b.x_hot, self.descriptions, threads)
            with access.writing("scores") as con, transaction(con):
                _write_scores(con, champion, b.feats, b.scores, self.run_id)
                if challenger is not None and b.shadow is not None:
                    _write_scores(con, challenger, b.feats, b.shadow, self.run_id)
                created = (
                    create_alerts(con, self.cfg.settings.alerts, candidates, self.run_id, explain)
                    if len(b.hot)
                    else None
                )
                clock.lap("write")
                days = sketched.result()
                clock.lap("profile")  # the sketch's time not hidden behind the inserts
                write_profiles(
                    con,
                    days,
                    model_name=champion.name,
                    model_version=champion.version,
                    part=f"{self.run_id}/{result.batches}",
                )
        clock.lap("write")
        result.batches += 1
        result.scored += b.feats.num_rows
        result.shadow_scored += b.feats.num_rows if b.shadow is not None else 0
        result.above_threshold += len(b.hot)
        result.stale_above_threshold += b.stale
        result.alerts_created += created.created if created else 0


def _recent_mask(feats: pa.Table, after: datetime | None) -> np.ndarray:
    times = feats["event_time"].to_numpy()
    if after is None:
        return np.ones(len(times), dtype=bool)
    return np.asarray(times >= np.datetime64(after), dtype=bool)


def _alert_candidates(
    feats: pa.Table, hot: np.ndarray, scores: np.ndarray, model: LoadedModel
) -> pl.DataFrame:
    keys = pl.from_arrow(feats.select(list(CANONICAL)).take(pa.array(hot, type=pa.int64())))
    assert isinstance(keys, pl.DataFrame)
    return keys.with_columns(
        pl.Series("score", scores[hot], dtype=pl.Float64),
        pl.lit(model.name).alias("model_name"),
        pl.lit(model.version, dtype=pl.Int32).alias("model_version"),
        pl.lit(None, dtype=pl.Utf8).alias("reasons"),  # filled in for the chosen by explain
    )
