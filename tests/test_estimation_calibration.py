"""The estimate's calibration kept current (issue 18): after training, the world's fraud
odds rise (a prior shift the champion's validation data could not show). Calibrated on
the validation days alone, the estimated precision at the threshold stays low and its
interval misses the realised figure on nearly every day; refitted on the champion's own
scores of the latest matured days, it holds on most. Real DuckDB warehouse, registry and
performance report; the scores are drawn with known fraud probabilities
(tests/scored_world.py)."""

from __future__ import annotations

import re
from pathlib import Path

from jobs.config import load_config
from jobs.performance_report import write_performance
from jobs.registry_access import open_registry
from jobs.warehouse import configured_warehouse
from tests.scored_world import build


def _report(cfg_path: Path) -> str:
    cfg = load_config(cfg_path)
    reg = open_registry(cfg)
    with configured_warehouse(cfg, read_only=True) as con:
        _, path = write_performance(con, cfg, reg)
    return path.read_text()


def _held(html: str, metric: str) -> tuple[int, int]:
    m = re.search(rf"<tr><td>{metric}</td><td class=\"num\">(\d+) of (\d+) ", html)
    assert m is not None, metric
    return int(m[1]), int(m[2])


def test_a_prior_shift_after_training_is_followed_by_the_current_calibration(
    tmp_path: Path,
) -> None:
    world = build(tmp_path, odds_factor=2.5)  # fraud odds x2.5 from the day training ended
    current = _report(world.cfg.path)
    fixed_cfg = tmp_path / "training-time.toml"
    fixed_cfg.write_text(
        world.cfg.path.read_text().replace("recalibration_days = 28", "recalibration_days = 0")
    )
    (tmp_path / "var" / "reports").rename(tmp_path / "reports-current")
    fixed = _report(fixed_cfg)

    held, compared = _held(current, "precision at threshold")
    assert compared == 14 and held >= 11, (held, compared)
    held, compared = _held(fixed, "precision at threshold")
    assert compared == 14 and held <= 3, (held, compared)
    # average precision and recall move with the prior too; card precision@k barely
    for metric in ("average precision", "recall at threshold", "card precision at k"):
        held, compared = _held(current, metric)
        assert held >= 10, (metric, held, compared)
    # the report says which calibration the latest day's estimate went through
    assert re.search(
        r"estimate of the latest day calibrated by: <strong>v1 recalibrated on its scores of "
        r"2026-02-09 \.\. 2026-03-08 \([\d,]+ rows, [\d,]+ frauds\)</strong>",
        current,
    ), re.findall(r"calibrated by: <strong>[^<]*", current)
    assert "v1&#39;s training-time calibration (validation days" in fixed
