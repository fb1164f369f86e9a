"""Day profiles from Spark scoring: the drift report reads them instead of recomputing features.

The DuckDB path's scoring sketches each batch's features (and the champion's scores) per
event day as it scores (:func:`jobs.profiles.batch_profiles`) and stores them in the
warehouse's ``feature_profiles``. With Spark, each scoring task does the same with the same
function, over the batches of its partition, and merges its parts per day
(:data:`jobs.profiles.COMPACT_POINTS`); Spark then merges the tasks' sketches per day and
column (``applyInArrow``, so the driver receives one small sketch per day and column,
however many partitions), and the driver stores them in the DuckDB warehouse's
``feature_profiles`` (:func:`jobs.profiles.write_profiles`), where the reports read them,
as they read the alerts outbox, next to the DuckDB views of the Parquet tables.

The scores are committed first, then the profiles written: a crash in between leaves days
whose stored profiles count fewer rows than their transactions, and the drift report then
profiles those days itself (:func:`jobs.profiles.ensure_day_profiles`), as for a warehouse
scored before profiles existed.
"""

from __future__ import annotations

import json
from datetime import date
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from jobs.config import Config
from jobs.features import FeatureSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

PROFILE_SCHEMA = "day date, column_name string, sketch string"
_ARROW = pa.schema([("day", pa.date32()), ("column_name", pa.string()), ("sketch", pa.string())])


class PartitionProfiles:
    """A scoring task's day profiles: added batch by batch, merged per day at the end."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self.parts: dict[date, list[Any]] = {}

    def add(self, feats: pa.Table, scores: Any) -> None:
        from jobs.profiles import batch_profiles

        for d in batch_profiles(feats, scores, self.spec):
            self.parts.setdefault(d.day, []).append(d.profile)

    def batch(self) -> pa.RecordBatch:
        """One row per day and column: the merged sketch as JSON."""
        from jobs.profiles import COMPACT_POINTS
        from reports.profile import merge_profiles, sketch_to_json

        rows: dict[str, list[Any]] = {"day": [], "column_name": [], "sketch": []}
        for day, parts in sorted(self.parts.items()):
            merged = merge_profiles(parts, COMPACT_POINTS)
            for column, sketch in merged.columns.items():
                rows["day"].append(day)
                rows["column_name"].append(column)
                rows["sketch"].append(json.dumps(sketch_to_json(sketch)))
        return pa.RecordBatch.from_pydict(rows, schema=_ARROW)


def _merge_group(table: pa.Table) -> pa.Table:
    """One day and column's sketches from every task, merged (``applyInArrow``)."""
    from jobs.profiles import COMPACT_POINTS
    from reports.profile import merge_sketches, sketch_from_json, sketch_to_json

    sketches = [sketch_from_json(json.loads(t)) for t in table.column("sketch").to_pylist()]
    merged = merge_sketches(sketches, COMPACT_POINTS)
    return pa.table(
        {
            "day": table.column("day").slice(0, 1),
            "column_name": table.column("column_name").slice(0, 1),
            "sketch": pa.array([json.dumps(sketch_to_json(merged))], pa.string()),
        },
        schema=_ARROW,
    )


def day_profiles(sketches: DataFrame) -> list[Any]:
    """The tasks' sketch rows merged by Spark per day and column, as ``DayProfile``s."""
    from jobs.profiles import SCORE, DayProfile
    from reports.profile import Profile, sketch_from_json

    merged = sketches.groupBy("day", "column_name").applyInArrow(_merge_group, PROFILE_SCHEMA)
    by_day: dict[date, dict[str, Any]] = {}
    for day, column, text in merged.collect():
        by_day.setdefault(day, {})[column] = sketch_from_json(json.loads(text))
    return [
        DayProfile(
            day,
            Profile(cols, max((s.n for c, s in cols.items() if c != SCORE), default=0)),
        )
        for day, cols in sorted(by_day.items())
    ]


def store_day_profiles(
    cfg: Config, days: list[Any], *, model_name: str, model_version: int, run_id: str
) -> int:
    """Write the day profiles into the warehouse's ``feature_profiles`` (one transaction);
    returns how many days."""
    from jobs.profiles import write_profiles
    from jobs.warehouse import configured_warehouse, transaction

    if not days:
        return 0
    with configured_warehouse(cfg) as con, transaction(con):
        write_profiles(
            con, days, model_name=model_name, model_version=model_version, part=f"{run_id}/spark"
        )
    return len(days)
