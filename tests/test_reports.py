"""Reports as files an analyst opens: content, escaping, self-containment, size."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from conftest import World

from jobs.batch import run_batch
from jobs.cli import cli
from reports.drift import compute_drift
from reports.html import render_drift

EVIL = "<script>alert(1)</script>"


def add_hostile_rows(world: World) -> None:
    rows = pl.DataFrame(
        {
            "transaction_id": [f"evil-{i}" for i in range(40)],
            "event_time": [datetime(2026, 4, 5, 20, i) for i in range(40)],
            "card_id": [f"card-evil-{i}" for i in range(40)],
            "merchant_id": [EVIL] * 40,
            "amount": [4999.0 + i for i in range(40)],
            "channel": [EVIL] * 40,
            "distance_km": [4000.0] * 40,
        }
    )
    rows.write_parquet(world.root / "landing" / "transactions" / "zz-hostile.parquet")


@pytest.fixture
def published(world: World) -> World:
    add_hostile_rows(world)
    summary = run_batch(world.cfg, reports=True)
    assert summary.counts["reports"]["skipped"] == {}, summary.counts["reports"]
    return world


def html_files(world: World) -> list[Path]:
    return sorted(world.cfg.reports_dir.rglob("*.html"))


def test_every_report_is_written_and_indexed(published: World) -> None:
    files = {p.relative_to(published.cfg.reports_dir).parts[0] for p in html_files(published)}
    assert files >= {"drift", "performance", "models", "gate", "index.html"}
    index = (published.cfg.reports_dir / "index.html").read_text()
    manifest = json.loads((published.cfg.reports_dir / "index.json").read_text())
    for entry in manifest["reports"]:
        assert f'href="{entry["path"]}"' in index
        assert (published.cfg.reports_dir / entry["path"]).exists()
    kinds = [e["kind"] for e in manifest["reports"]]
    assert kinds.count("drift") == 1 and kinds.count("performance") == 1


def test_report_contents(published: World) -> None:
    d = published.cfg.reports_dir
    drift = next((d / "drift").glob("*.html")).read_text()
    assert re.search(r'id="verdict">(No dataset drift|Dataset drift detected)', drift)
    assert "card_tx_count_1d" in drift and "<svg" in drift
    perf = next((d / "performance").glob("*.html")).read_text()
    for text in (
        "Average precision",
        "Card precision@k",
        "Fraud amount caught",
        "Precision–recall",
        "<svg",
    ):
        assert text in perf
    card = (d / "models" / "fraud-v1.html").read_text()
    for text in ("Training window", "fingerprint", "Share of gain", "min_rows", "num_leaves"):
        assert text in card


def test_untrusted_strings_are_escaped_everywhere(published: World) -> None:
    for path in html_files(published):
        text = path.read_text()
        assert "<script" not in text.lower(), path
    drift = next((published.cfg.reports_dir / "drift").glob("*.html")).read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in drift  # the hostile channel, escaped
    digests = list(published.cfg.outbox_dir.glob("*.eml"))
    raw = b"".join(p.read_bytes() for p in digests).decode()
    assert EVIL not in raw.split("Content-Type: text/html")[-1]


def test_self_contained_and_small(published: World) -> None:
    for path in html_files(published):
        text = path.read_text()
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), path
        assert "@import" not in text and "url(http" not in text
        assert path.stat().st_size < 2_000_000


def test_html_size_does_not_grow_with_rows() -> None:
    rng = np.random.default_rng(0)

    def frame(n: int, shift: float) -> pl.DataFrame:
        return pl.DataFrame({f"f{i}": rng.normal(shift if i < 5 else 0.0, 1, n) for i in range(30)})

    sizes = []
    for n in (20_000, 400_000):
        result = compute_drift(
            frame(n, 0.0), frame(n, 1.0), numeric=[f"f{i}" for i in range(30)], categorical=[]
        )
        assert len(result.drifted) == 5
        sizes.append(len(render_drift(result, title="t", meta={})))
    assert abs(sizes[0] - sizes[1]) / sizes[0] < 0.1
    assert max(sizes) < 2_000_000


def test_report_cli_json(world: World) -> None:
    run_batch(world.cfg, reports=False)
    result = CliRunner().invoke(cli, ["report", "drift", "--config", str(world.cfg.path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"dataset_drift", "share_drifted", "features", "report"} <= set(data)
    result = CliRunner().invoke(
        cli, ["report", "performance", "--config", str(world.cfg.path), "--json"]
    )
    assert result.exit_code == 0, result.output
    perf = json.loads(result.stdout)
    assert perf["models"][0]["role"] == "champion"
    assert 0 < perf["models"][0]["average_precision"] <= 1
