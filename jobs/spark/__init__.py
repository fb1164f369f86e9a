"""The Spark engine (``[engine] kind = "spark"``): the data-parallel steps on Apache Spark.

DuckDB embedded stays the default. With Spark, the same definitions run on a cluster the
user already operates, and write plain partitioned Parquet tables under ``[spark]
warehouse`` that DuckDB reads directly, so alerts, reports, the registry and the gate work
unchanged on them:

- :mod:`jobs.spark.session`: the SparkSession from ``[spark]`` (master or Spark Connect);
- :mod:`jobs.spark.tables`: the Parquet tables, their whole-or-nothing commit (a journal
  renamed into place), and DuckDB views over them;
- :mod:`jobs.spark.file_rows` and :mod:`jobs.spark.ingest`: landing files read in Spark
  tasks (one per file) by the DuckDB path's own reader and typing SQL, de-duplicated and
  committed by Spark with the ledger of files;
- :mod:`jobs.spark.features`: the point-in-time features as Spark window functions, held
  against :mod:`jobs.feature_reference` value for value;
- :mod:`jobs.spark.revise`: a changed landing file, by the DuckDB path's rules;
- :mod:`jobs.spark.scoring`: champion and challenger applied in Arrow batches
  (``mapInArrow``), the artifact's sha256 verified where it is loaded, with the day
  profiles the drift report reads (:mod:`jobs.spark.profiles`);
- :mod:`jobs.spark.training_sets` and :mod:`jobs.spark.training`: the training set built by
  Spark (sampled with weights past ``max_training_rows``), fitted and registered on the
  driver as the DuckDB path does;
- :mod:`jobs.spark.run`: the jobs ``fraudwatch run``, ``ingest``, ``score`` run with
  ``[engine] kind = "spark"``.

pyspark is an optional dependency (``pip install 'fraudwatch[spark]'``): nothing outside
this package imports it.
"""
