"""Shared fixtures: a config file in tmp_path pointing at real files there."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from jobs.config import Config, load_config

BASE_CONFIG = """
data_dir = "var"

[source]
transactions = "landing/transactions/*.parquet"
labels = "landing/labels/*.parquet"
label_delay_days = 7

[source.numeric_columns]
distance_km = "distance_km"

[source.categorical_columns]
channel = "channel"
"""


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Config]:
    """Write ``config.toml`` in tmp_path: the base config, or ``text`` instead, plus ``extra``.

    Example: ``cfg = write_config(extra='[alerts]\\nthreshold = 0.3\\n')``.
    """

    def _write(text: str | None = None, extra: str = "", name: str = "config.toml") -> Config:
        path = tmp_path / name
        path.write_text((BASE_CONFIG if text is None else text) + "\n" + extra)
        return load_config(path)

    return _write
