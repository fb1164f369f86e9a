"""The SparkSession the Spark engine runs on, built from ``[spark]``.

``master`` (``local[2]``, ``spark://host:7077``, ``yarn``, ``k8s://...``) or ``remote``
(Spark Connect, ``sc://host:15002``); neither means ``local[*]``. fraudwatch sets the few
settings its results depend on (UTC session time zone, Parquet timestamps as
microseconds, Arrow transfers) and then passes ``[spark.conf]`` through as it is.

Nothing is downloaded at run time: no Maven packages, no jars; the tables are plain
Parquet, which Spark reads and writes with what it ships.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import TYPE_CHECKING

from jobs.config import Config, Spark
from jobs.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# what fraudwatch's results depend on: set first, so [spark.conf] may not undo them by accident
# (it can set other keys freely; these five are documented in the README)
BASE_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.sources.partitionOverwriteMode": "static",
    "spark.ui.showConsoleProgress": "false",
}


def missing_requirement(spark: Spark | None = None) -> str | None:
    """Why a Spark session cannot start here (no pyspark, no Java), or None.

    Spark Connect needs no local Java: the server runs the JVM."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install 'fraudwatch[spark]')"
    remote = spark is not None and spark.remote
    java_home = os.environ.get("JAVA_HOME")
    has_java = shutil.which("java") or (java_home and os.path.exists(f"{java_home}/bin/java"))
    if not remote and not has_java:
        return (
            "no Java runtime (Spark 4 needs Java 17 or 21: apt-get install "
            "openjdk-17-jre-headless, or set JAVA_HOME)"
        )
    return None


def spark_session(cfg: Config) -> SparkSession:
    """The session ``[spark]`` describes (an existing one in this process is reused)."""
    why = missing_requirement(cfg.settings.spark)
    if why:
        raise ConfigError(f'{cfg.path}: [engine] kind = "spark" cannot start: {why}')
    from pyspark.sql import SparkSession

    s = cfg.settings.spark
    # local mode: the Python workers are this interpreter (its venv has fraudwatch)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if not s.remote and (s.master or "local").startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # local mode: loopback only
    builder = SparkSession.builder.appName(s.app_name)
    builder = builder.remote(s.remote) if s.remote else builder.master(s.master or "local[*]")
    for key, value in BASE_CONF.items():
        builder = builder.config(key, value)
    for key, setting in s.conf.items():
        text = str(setting).lower() if isinstance(setting, bool) else str(setting)
        builder = builder.config(key, text)
    return builder.getOrCreate()
