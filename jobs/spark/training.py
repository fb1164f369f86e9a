"""Training with the Spark engine: the set built by Spark, the fit and registration the driver's.

``fraudwatch train`` with ``[engine] kind = "spark"`` (and the scheduled retrain, which calls
:func:`jobs.training.train_version`) comes here:

1. the window is :func:`jobs.training.resolve_window`'s, over DuckDB views of the Parquet
   tables (the data clock is the latest event or report Spark wrote);
2. Spark builds the window's training set (:func:`jobs.spark.training_sets.spark_training_set`):
   features and the latest label by the cutoff, sampled past ``[spark] max_training_rows``
   (every fraud kept, legitimate rows at the rate that fits, each weighing 1 / rate);
3. the driver fits on it with those weights and registers the version exactly as the
   DuckDB path does (:func:`jobs.training_register.fit_and_register`): the same lineage,
   plus ``extra["sampling"]``; the version becomes the challenger, the gate unchanged.

The run is recorded in the warehouse's ``runs`` ledger (job ``train``, ``counts.engine``).
"""

from __future__ import annotations

from datetime import date

from jobs import logs
from jobs.config import Config
from jobs.training_register import TrainResult

log = logs.get("training")


def spark_train_version(
    cfg: Config,
    *,
    start: date | None = None,
    end: date | None = None,
    actor: str | None = None,
) -> TrainResult:
    """Build the window's set on Spark, fit on the driver, register the challenger."""
    import duckdb

    from jobs.runs import recorded_run
    from jobs.spark.ingest import read_table
    from jobs.spark.session import spark_session
    from jobs.spark.tables import duckdb_views
    from jobs.spark.training_sets import spark_training_set, weights
    from jobs.training import resolve_window
    from jobs.training_register import fit_and_register

    with recorded_run(cfg, "train") as rec:
        rec.counts["engine"] = "spark"
        views = duckdb.connect()
        try:
            duckdb_views(views, cfg)  # the data clock of what Spark wrote
            window = resolve_window(views, cfg, start, end)
        finally:
            views.close()
        spark = spark_session(cfg)
        tx, labels = read_table(spark, cfg, "transactions"), read_table(spark, cfg, "labels")
        data, sampling = spark_training_set(spark, cfg, window, tx, labels)
        logs.event(log, "training set built on spark", **sampling.to_dict())
        result = fit_and_register(
            cfg,
            data,
            actor=actor,
            weights=weights(data, sampling).to_numpy() if sampling.sampled else None,
            sampling=sampling.to_dict(),
        )
        rec.counts["train"] = {
            "version": result.version,
            "rows": result.rows,
            "rows_trained_on": data.frame.height,
            "sampled": sampling.sampled,
        }
    return result
