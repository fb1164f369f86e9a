"""Shared fixtures: configs in tmp_path, and a small simulated world (real files, real DuckDB,
real SQLite registry, a real trained LightGBM champion) built once per session and copied
per test."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
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

WORLD_CONFIG = (
    BASE_CONFIG
    + """
[training]
window_days = 21
holdout_days = 0

[training.quality]
min_rows = 500
min_frauds = 20

[model]
num_boost_round = 60

[scoring]
batch_size = 5000

[alerts]
channels = ["file"]
threshold = 0.5
daily_budget = 20

[promotion]
bootstrap_samples = 50
min_labelled_days = 3
"""
)

WORLD_START = date(2026, 3, 2)
WORLD_DAYS = 35
WORLD_CARDS = 600


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


@dataclass(frozen=True)
class World:
    root: Path
    cfg: Config
    champion: int

    def land_days(self, start: date, days: int = 1) -> None:
        """New simulated days of the same world's cards and merchants in the landing folder."""
        from jobs.simulate import SimulationOptions, simulate

        simulate(
            self.root / "landing",
            start=start,
            days=days,
            seed=11,
            options=SimulationOptions(n_cards=600, n_merchants=150),
        )


def _build_world(root: Path) -> None:
    from jobs.ingest import ingest
    from jobs.promotion import promote
    from jobs.simulate import SimulationOptions, simulate
    from jobs.training import train_version
    from jobs.warehouse import warehouse

    root.mkdir(parents=True, exist_ok=True)
    (root / "config.toml").write_text(WORLD_CONFIG)
    simulate(
        root / "landing",
        start=WORLD_START,
        days=WORLD_DAYS,
        seed=11,
        options=SimulationOptions(n_cards=WORLD_CARDS, n_merchants=150),
    )
    cfg = load_config(root / "config.toml")
    with warehouse(cfg.warehouse_path, extra_columns=cfg.extra_columns()) as con:
        ingest(con, cfg)
    v1 = train_version(cfg, start=WORLD_START, end=date(2026, 3, 23))
    promote(cfg, v1.version, reason="first model", actor="tests")


@pytest.fixture(scope="session")
def world_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated deployment with data ingested and a champion: built once per session."""
    root = tmp_path_factory.mktemp("world")
    _build_world(root)
    return root


@pytest.fixture
def world(world_template: Path, tmp_path: Path) -> Iterator[World]:
    """A private copy of the simulated deployment (same absolute layout under tmp_path)."""
    root = tmp_path / "world"
    shutil.copytree(world_template, root)
    # the registry stores artifact paths relative to its folder; config paths are relative too
    cfg = load_config(root / "config.toml")
    yield World(root=root, cfg=cfg, champion=1)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.startswith("FRAUDWATCH_"):
            monkeypatch.delenv(key)
    return monkeypatch
