"""Profiles kept as the data arrives, so a drift report reads kilobytes, not millions of rows.

- The CURRENT side: as scoring computes a batch's features, :func:`batch_profiles`
  sketches them per event day (and the champion's scores), and
  :func:`write_profiles` stores the sketches in ``feature_profiles`` in the
  batch's own warehouse transaction: a crash loses the batch's scores and its
  profile together. A day profiled in many small runs is compacted into one
  part (:data:`MAX_PARTS`). A window's profile is the merge of its days'.
  Days scored before profiles existed (an upgraded warehouse) are profiled
  once, at the first report that needs them (:func:`ensure_day_profiles`).
- The REFERENCE side belongs to the champion: :func:`reference_profile`
  computes it once per champion version and window, from a sample of at most
  ``[reports.drift] reference_rows`` transactions, and stores it as JSON in the
  registry's artifact store (sha256-verified on every load) with the version's
  extra data; later reports only load it.

The reference window leaves out the warm-up days at the start of the data,
when the longest feature window is not yet full (:func:`reference_window`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from jobs import logs
from jobs.config import Config
from jobs.features import FeatureSpec, feature_spec, iter_feature_batches
from jobs.runs import utcnow
from registry import Registry
from reports.profile import (
    Profile,
    Sketch,
    merge_profiles,
    merge_sketches,
    numeric_sketch,
    profile_frame,
    profile_from_json,
    profile_to_json,
    sketch_from_json,
    sketch_to_json,
)

log = logs.get("profiles")

MAX_PARTS = 8  # parts per day and column before they are compacted into one
COMPACT_POINTS = 2048
REFERENCE_POINTS = 2048
SCORE = "score"


@dataclass(frozen=True)
class DayProfile:
    day: date
    profile: Profile  # the features, and "score" when a model scored the rows


def _columns(spec: FeatureSpec) -> tuple[list[str], list[str]]:
    numeric = [n for n in spec.names if n not in spec.categorical]
    return numeric, list(spec.categorical)


def batch_profiles(
    feats: pa.Table, scores: np.ndarray | None, spec: FeatureSpec
) -> list[DayProfile]:
    """The sketches of a batch's features (and scores), one profile per event day."""
    numeric, categorical = _columns(spec)
    frame = pl.from_arrow(feats.select(["event_time", *spec.names]))
    assert isinstance(frame, pl.DataFrame)
    if scores is not None:
        frame = frame.with_columns(pl.Series(SCORE, scores, dtype=pl.Float64))
        numeric = [*numeric, SCORE]
    frame = frame.with_columns(pl.col("event_time").dt.date().alias("_day"))
    out = []
    for (day,), part in frame.group_by(["_day"], maintain_order=True):
        assert isinstance(day, date)
        out.append(DayProfile(day, profile_frame(part, numeric=numeric, categorical=categorical)))
    return out


def write_profiles(
    con: duckdb.DuckDBPyConnection,
    days: Sequence[DayProfile],
    *,
    model_name: str,
    model_version: int | None,
    part: str,
) -> None:
    """Store the day profiles (inside the caller's transaction); compact busy days."""
    now = utcnow()
    rows = []
    for d in days:
        for column, s in d.profile.columns.items():
            is_score = column == SCORE
            rows.append(
                (
                    d.day,
                    column,
                    model_name if is_score else None,
                    model_version if is_score else None,
                    part,
                    s.n,
                    s.missing,
                    json.dumps(sketch_to_json(s)),
                    now,
                )
            )
    if rows:
        con.executemany("INSERT INTO feature_profiles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    for d in days:
        _compact(con, d.day)


def _compact(con: duckdb.DuckDBPyConnection, day: date) -> None:
    """Merge a day's parts into one per column (and model version) once there are many."""
    busy = con.execute(
        "SELECT column_name, model_name, model_version FROM feature_profiles WHERE day = ? "
        "GROUP BY ALL HAVING count(*) > ?",
        [day, MAX_PARTS],
    ).fetchall()
    for column, model_name, version in busy:
        where = (
            "day = ? AND column_name = ? AND model_name IS NOT DISTINCT FROM ? "
            "AND model_version IS NOT DISTINCT FROM ?"
        )
        params = [day, column, model_name, version]
        parts = con.execute(f"SELECT sketch FROM feature_profiles WHERE {where}", params).fetchall()
        merged = merge_sketches([sketch_from_json(json.loads(p[0])) for p in parts], COMPACT_POINTS)
        con.execute(f"DELETE FROM feature_profiles WHERE {where}", params)
        con.execute(
            "INSERT INTO feature_profiles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                day,
                column,
                model_name,
                version,
                "compacted",
                merged.n,
                merged.missing,
                json.dumps(sketch_to_json(merged)),
                utcnow(),
            ],
        )


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time())
    return start, start + timedelta(days=1)


def ensure_day_profiles(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    days: Sequence[date],
    *,
    model_name: str,
    model_version: int | None,
) -> dict[date, Profile]:
    """Profile the days whose transactions are not all profiled yet (scored before profiles
    existed, or profiled under other feature definitions) and store them. Returns the days
    (re)profiled; on a read-only connection (a run's reports) they are not stored, and the
    caller merges the returned profiles itself (:func:`window_profile` ``fresh``)."""
    if not days:
        return {}
    read_only = con.execute("SELECT current_setting('access_mode')").fetchall()[0][0] == (
        "read_only"
    )
    spec = feature_spec(cfg)
    names = list(spec.names)
    lo, hi = min(days), max(days) + timedelta(days=1)
    counts = dict(
        con.execute(
            "SELECT event_time::DATE, count(*) FROM transactions "
            "WHERE event_time >= ? AND event_time < ? GROUP BY ALL",
            [lo, hi],
        ).fetchall()
    )
    profiled: dict[date, dict[str, int]] = {}
    for day, column, n in con.execute(
        "SELECT day, column_name, sum(n) FROM feature_profiles "
        "WHERE day >= ? AND day < ? AND model_version IS NULL GROUP BY ALL",
        [lo, hi],
    ).fetchall():
        profiled.setdefault(day, {})[column] = int(n)
    redo = [
        d
        for d in days
        if counts.get(d, 0)
        and any(profiled.get(d, {}).get(name, -1) != counts[d] for name in names)
    ]
    done: dict[date, Profile] = {}
    for day in redo:
        start, end = _day_bounds(day)
        con.execute("DROP TABLE IF EXISTS temp.fw_profile_day")
        con.execute(
            "CREATE TEMP TABLE fw_profile_day AS SELECT transaction_id FROM transactions "
            "WHERE event_time >= ? AND event_time < ?",
            [start, end],
        )
        parts: list[Profile] = []
        for batch in iter_feature_batches(
            con, cfg, "fw_profile_day", cfg.settings.scoring.feature_chunk_size
        ):
            parts.extend(p.profile for p in batch_profiles(batch, None, spec))
        con.execute("DROP TABLE IF EXISTS temp.fw_profile_day")
        scores = None
        if model_version is not None:
            rows = con.execute(
                "SELECT s.score FROM scores s SEMI JOIN (SELECT transaction_id FROM transactions "
                "WHERE event_time >= ? AND event_time < ?) t USING (transaction_id) "
                "WHERE s.model_name = ? AND s.model_version = ? AND s.role = 'champion'",
                [start, end, model_name, model_version],
            ).fetchnumpy()
            scores = rows["score"]
        merged = merge_profiles(parts, COMPACT_POINTS)
        columns: dict[str, Sketch] = dict(merged.columns)
        if scores is not None and scores.size:
            columns[SCORE] = numeric_sketch(scores, COMPACT_POINTS)
        done[day] = Profile(columns, merged.rows)
        if read_only:
            logs.event(log, "day profiled, not stored (read-only)", day=str(day))
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                "DELETE FROM feature_profiles WHERE day = ? AND (model_version IS NULL "
                "OR (model_name = ? AND model_version IS NOT DISTINCT FROM ?))",
                [day, model_name, model_version],
            )
            write_profiles(
                con,
                [DayProfile(day, Profile(columns, merged.rows))],
                model_name=model_name,
                model_version=model_version,
                part=f"backfill {utcnow():%Y-%m-%dT%H:%M:%S}",
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        logs.event(log, "day profiled", day=str(day), rows=merged.rows)
    return done


def window_profile(
    con: duckdb.DuckDBPyConnection,
    start: date,
    end: date,
    *,
    model_name: str,
    model_version: int | None,
    fresh: dict[date, Profile] | None = None,
) -> tuple[Profile, int]:
    """The merged profile of the days ``start <= day < end`` (the features, and the score of
    ``model_version``), and how many days it holds; ``fresh`` day profiles replace the
    stored ones of their days."""
    fresh = {d: p for d, p in (fresh or {}).items() if start <= d < end}
    rows = con.execute(
        "SELECT day, column_name, sketch FROM feature_profiles WHERE day >= ? AND day < ? "
        "AND (model_version IS NULL OR (column_name = ? AND model_name = ? AND model_version = ?))",
        [start, end, SCORE, model_name, model_version],
    ).fetchall()
    by_column: dict[str, list[Sketch]] = {}
    days = set()
    for day, profile in fresh.items():
        days.add(day)
        for column, sketch in profile.columns.items():
            by_column.setdefault(column, []).append(sketch)
    for day, column, text in rows:
        if day in fresh:
            continue
        days.add(day)
        by_column.setdefault(column, []).append(
            sketch_from_json(json.loads(text), f"feature_profiles {day} {column}")
        )
    columns = {c: merge_sketches(s) for c, s in by_column.items()}
    n = max((s.n for c, s in columns.items() if c != SCORE), default=0)
    return Profile(columns, n), len(days)


def profiled_state(
    con: duckdb.DuckDBPyConnection, start: date, end: date, model_version: int | None
) -> list[Any]:
    """What a window's profile depends on: rows and latest write per day (a report's inputs)."""
    return [
        [str(d), int(n), str(t)]
        for d, n, t in con.execute(
            "SELECT day, sum(n), max(created_at) FROM feature_profiles WHERE day >= ? AND day < ? "
            "AND (model_version IS NULL OR model_version = ?) GROUP BY day ORDER BY day",
            [start, end, model_version],
        ).fetchall()
    ]


# -- the reference profile, stored with the champion ----------------------------------------
@dataclass(frozen=True)
class ReferenceWindow:
    start: datetime
    end: datetime
    note: str  # how it was chosen, for the report


def warm_up_end(con: duckdb.DuckDBPyConnection, history_days: int) -> datetime | None:
    """The first day every feature window is full: the first data day + the longest window."""
    first = con.execute("SELECT min(event_time) FROM transactions").fetchall()[0][0]
    if first is None:
        return None
    return datetime.combine(first.date(), time()) + timedelta(days=history_days)


def reference_window(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    training: tuple[datetime, datetime] | None,
    current_start: datetime,
) -> ReferenceWindow | None:
    """The configured window, else the champion's training window after the warm-up, else
    the full-window days before the current window, else the training window as it is."""
    d = cfg.settings.reports.drift
    if d.reference_start and d.reference_end:
        return ReferenceWindow(
            datetime.combine(d.reference_start, time()),
            datetime.combine(d.reference_end, time()),
            "configured ([reports.drift] reference_start/reference_end)",
        )
    history = feature_spec(cfg).history_days
    warm = warm_up_end(con, history)
    if training is not None:
        start, end = training
        if warm is None or start >= warm:
            return ReferenceWindow(start, end, "the champion's training window")
        if end - max(start, warm) >= timedelta(days=1):
            return ReferenceWindow(
                warm,
                end,
                f"the champion's training window from {warm:%Y-%m-%d}: the first {history} days "
                "of data (windows not yet full) left out",
            )
    if warm is not None and current_start - warm >= timedelta(days=1):
        return ReferenceWindow(
            warm,
            current_start,
            f"the days from {warm:%Y-%m-%d} (the first {history} days of data left out, their "
            "windows not yet full) to the current window",
        )
    if training is not None:
        return ReferenceWindow(
            training[0],
            training[1],
            f"the champion's training window, WARM-UP INCLUDED: the data holds no day after its "
            f"first {history} days outside the current window; {history}-day features read low",
        )
    return None


def _compute_reference(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    window: ReferenceWindow,
    champion: Any,
) -> tuple[Profile, int]:
    from jobs.loaded_model import inference_policy, predict

    spec = feature_spec(cfg)
    limit = cfg.settings.reports.drift.reference_rows
    total = int(
        con.execute(
            "SELECT count(*) FROM transactions WHERE event_time >= ? AND event_time < ?",
            [window.start, window.end],
        ).fetchall()[0][0]
    )
    con.execute("DROP TABLE IF EXISTS temp.fw_reference")
    sample = f"USING SAMPLE reservoir({int(limit)} ROWS) REPEATABLE (42)" if total > limit else ""
    con.execute(
        "CREATE TEMP TABLE fw_reference AS SELECT transaction_id FROM "
        "(SELECT transaction_id FROM transactions WHERE event_time >= ? AND event_time < ?) "
        f"{sample}",
        [window.start, window.end],
    )
    parts: list[Profile] = []
    policy = inference_policy(cfg.settings.scoring)
    try:
        for batch in iter_feature_batches(
            con, cfg, "fw_reference", cfg.settings.scoring.batch_size
        ):
            scores = None
            if champion is not None:
                scores, _ = predict(champion, batch, policy, cfg.settings.scoring.num_threads)
            parts.extend(p.profile for p in batch_profiles(batch, scores, spec))
    finally:
        con.execute("DROP TABLE IF EXISTS temp.fw_reference")
    return merge_profiles(parts, REFERENCE_POINTS), total


def reference_profile(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    reg: Registry,
    window: ReferenceWindow,
) -> tuple[Profile, dict[str, Any]]:
    """The champion's reference profile for ``window``: loaded from the registry's artifact
    store when it was computed before (same window, features and sample size), else
    computed once and stored there with the version. Returns the profile and its record."""
    name = cfg.settings.model.name
    info = reg.get_alias(name, "champion")
    spec = feature_spec(cfg)
    key = {
        "start": window.start.isoformat(),
        "end": window.end.isoformat(),
        "features": list(spec.names),
        "sample": cfg.settings.reports.drift.reference_rows,
    }
    if info is not None:
        stored = (info.extra or {}).get("reference_profile")
        if isinstance(stored, dict) and stored.get("key") == key:
            text = reg.artifacts.get(
                str(stored.get("sha256")), what=f"{name} v{info.version} reference profile"
            )
            return profile_from_json(json.loads(text)), stored
    from jobs.loaded_model import load_model  # LightGBM: only when the profile is computed

    champion = load_model(reg, name, "champion") if info is not None else None
    profile, total = _compute_reference(con, cfg, window, champion)
    record: dict[str, Any] = {
        "key": key,
        "rows": profile.rows,
        "window_rows": total,
        "computed_at": utcnow().isoformat(timespec="seconds"),
    }
    if info is not None:
        text = json.dumps(
            profile_to_json(profile, model=name, version=info.version, window=key),
            sort_keys=True,
        )
        record["sha256"] = reg.artifacts.put(text)
        reg.update_version(name, info.version, extra={"reference_profile": record})
        logs.event(log, "reference profile stored", version=info.version, **record)
    return profile, record
