"""The engine keys: validated like every other key, with the key and the file named; and a
Spark engine that cannot start says why (no Spark needed for these)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from jobs.config import Config
from jobs.errors import ConfigError


def test_spark_settings_are_read_with_defaults(write_config: Callable[..., Config]) -> None:
    cfg = write_config(
        extra='[engine]\nkind = "spark"\n\n[spark]\nmaster = "local[2]"\nwarehouse = "tables"\n'
        '[spark.conf]\n"spark.executor.memory" = "4g"\n"spark.ui.enabled" = false\n'
    )
    s = cfg.settings
    assert s.engine.kind == "spark" and s.spark.master == "local[2]"
    assert cfg.spark_warehouse == cfg.root / "tables"
    assert s.spark.conf == {"spark.executor.memory": "4g", "spark.ui.enabled": False}
    assert write_config().settings.engine.kind == "duckdb"  # the default stays DuckDB


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ('[engine]\nkind = "flink"\n', "'engine.kind': Input should be 'duckdb' or 'spark'"),
        ('[spark]\nmaster = "lokal[2]"\n', "'spark.master'"),
        ('[spark]\nremote = "http://host:15002"\n', "not a Spark Connect URL (sc://host:15002)"),
        (
            '[spark]\nmaster = "local[2]"\nremote = "sc://h:15002"\n',
            "spark.master and spark.remote are both set",
        ),
        ('[spark]\nwarehouse = "s3a://bucket/fraud"\n', "a s3a:// URL is not supported"),
        ('[spark.conf]\n"executor.memory" = "4g"\n', "is not a Spark setting"),
        ('[spark.conf]\n"spark.master" = "local"\n', "is set by fraudwatch"),
        ("[spark]\nmax_training_rows = 10\n", "'spark.max_training_rows'"),
        ('[spark]\nmastr = "local"\n', "unknown key 'spark.mastr' (did you mean 'master'?)"),
    ],
)
def test_bad_spark_settings_name_the_key(
    write_config: Callable[..., Config], extra: str, says: str
) -> None:
    with pytest.raises(ConfigError) as err:
        write_config(extra=extra)
    assert says in str(err.value) and "config.toml" in str(err.value)


def test_no_java_is_a_clear_config_error(
    write_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobs.spark.session import spark_session

    pytest.importorskip("pyspark", reason="pyspark is not installed")
    cfg = write_config(extra='[engine]\nkind = "spark"\n')
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(ConfigError) as err:
        spark_session(cfg)
    assert err.value.exit_code == 2
    assert "cannot start: no Java runtime" in str(err.value)
    assert "openjdk-17-jre-headless" in str(err.value)
