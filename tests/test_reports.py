"""Reports as files an analyst opens: content, escaping, self-containment, size."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import date, datetime
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
    # the run summary says where the reports stage spent its time
    assert set(summary.counts["reports"]["seconds"]) == {
        "drift",
        "performance",
        "model_cards",
        "index",
    }
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
    assert re.search(r'id="verdict" data-status="(alarm|drift|ok)">', drift)
    assert "card_tx_count_1d" in drift and "<svg" in drift
    perf = next((d / "performance").glob("*.html")).read_text()
    for text in (
        "Average precision",
        "Card precision@k",
        "Fraud amount caught",
        "Precision–recall",
        "Tuning the alert policy",
        "EUR",
        "<svg",
    ):
        assert text in perf
    card = (d / "models" / "fraud-v1.html").read_text()
    for text in (
        "Training window",
        "fingerprint",
        "Share of gain",
        "min_rows",
        "num_leaves",
        "Features, ranked by importance",
    ):
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
    assert {"status", "alarms", "dataset_drift", "share_drifted", "features", "report"} <= set(data)
    text = CliRunner().invoke(cli, ["report", "drift", "--config", str(world.cfg.path)])
    assert text.exit_code == 0, text.output
    first = text.stdout.splitlines()[0]
    verdict = {"alarm": "DRIFT ALARM", "drift": "some features drifted", "ok": "no drift"}
    assert (
        first.startswith(verdict[data["status"]] + ":") and "of the champion's importance" in first
    )
    for alarm in data["alarms"]:
        assert f"  ! {alarm}" in text.stdout
    result = CliRunner().invoke(
        cli, ["report", "performance", "--config", str(world.cfg.path), "--json"]
    )
    assert result.exit_code == 0, result.output
    perf = json.loads(result.stdout)
    assert perf["models"][0]["role"] == "champion"
    assert 0 < perf["models"][0]["average_precision"] <= 1


def test_a_report_is_written_only_when_its_inputs_change(world: World) -> None:
    first = run_batch(world.cfg, reports=True).counts["reports"]
    assert {Path(p).parts[-2] for p in first["written"]} >= {"drift", "performance", "models"}
    again = run_batch(world.cfg, reports=True).counts["reports"]
    assert again["written"] == [] and set(again["unchanged"]) == {"drift", "performance"}
    world.land_days(date(2026, 4, 6))  # a new day of transactions and chargebacks
    third = run_batch(world.cfg, reports=True).counts["reports"]
    kinds = [Path(p).parts[-2] for p in third["written"]]
    assert "drift" in kinds and "performance" in kinds
    manifest = json.loads((world.cfg.reports_dir / "index.json").read_text())["reports"]
    assert [e["kind"] for e in manifest].count("drift") == 2


def test_a_report_written_by_its_command_is_not_redone_by_the_next_run(world: World) -> None:
    """An analyst's `fraudwatch report drift` / `report performance` records its inputs, as a
    run does: the next scheduled run, with nothing new, leaves both reports as they are."""
    run_batch(world.cfg, reports=True)
    for kind in ("drift", "performance"):
        result = CliRunner().invoke(cli, ["report", kind, "--config", str(world.cfg.path)])
        assert result.exit_code == 0, result.output
    after = run_batch(world.cfg, reports=True).counts["reports"]
    assert after["written"] == [] and set(after["unchanged"]) == {"drift", "performance"}


def test_profiles_are_kept_as_rows_are_scored_and_the_reference_with_the_champion(
    published: World,
) -> None:
    from jobs.registry_access import open_registry
    from jobs.warehouse import warehouse
    from registry import ArtifactIntegrityError

    with warehouse(published.cfg.warehouse_path) as con:
        per_day = con.execute(
            "SELECT t.day, t.n, p.n FROM (SELECT event_time::DATE AS day, count(*) AS n "
            "FROM transactions GROUP BY 1) t LEFT JOIN (SELECT day, sum(n) AS n "
            "FROM feature_profiles WHERE column_name = 'amount' GROUP BY 1) p USING (day)"
        ).fetchall()
    assert per_day and all(n == profiled for _, n, profiled in per_day)
    reg = open_registry(published.cfg)
    record = reg.get_alias("fraud", "champion").extra["reference_profile"]
    stored = reg.artifacts.path_for(record["sha256"])
    assert json.loads(stored.read_text())["format"] == "fraudwatch-profile/1"
    stored.write_text(stored.read_text().replace('"rows"', '"rowz"'))
    from jobs.reporting import write_drift

    with warehouse(published.cfg.warehouse_path) as con, pytest.raises(ArtifactIntegrityError):
        write_drift(con, published.cfg, reg)


def test_retention_keeps_the_latest_of_each_kind(published: World) -> None:
    from jobs.registry_access import open_registry
    from jobs.reporting import write_drift
    from jobs.warehouse import warehouse
    from reports.index import prune

    d = published.cfg.reports_dir
    with warehouse(published.cfg.warehouse_path) as con:  # a second drift report
        write_drift(con, published.cfg, open_registry(published.cfg), start=date(2026, 4, 1))
    manifest = json.loads((d / "index.json").read_text())
    drifts = sorted(
        (e for e in manifest["reports"] if e["kind"] == "drift"), key=lambda e: e["created"]
    )
    assert len(drifts) == 2
    old = drifts[0]["path"]
    for e in manifest["reports"]:
        if e["path"] in (old, next(x["path"] for x in manifest["reports"] if x["kind"] == "gate")):
            e["created"] = "1999-01-01T00:00:00+00:00"  # long ago
    (d / "index.json").write_text(json.dumps(manifest))
    removed = prune(d, 30)
    assert removed == [old] and not (d / old).exists()  # gate reports are never pruned
    kinds = [e["kind"] for e in json.loads((d / "index.json").read_text())["reports"]]
    assert kinds.count("drift") == 1 and kinds.count("performance") == 1 and "gate" in kinds
    assert old not in (d / "index.html").read_text()


def test_drift_report_imports_only_what_it_needs(published: World) -> None:
    code = (
        "import sys\n"
        "from jobs.config import load_config\n"
        "from jobs.registry_access import open_registry\n"
        "from jobs.reporting import write_drift\n"
        "from jobs.warehouse import configured_warehouse\n"
        f"cfg = load_config({str(published.cfg.path)!r})\n"
        "with configured_warehouse(cfg) as con:\n"
        "    write_drift(con, cfg, open_registry(cfg))\n"
        "heavy = ('sklearn', 'lightgbm', 'pandas', 'matplotlib', 'reports.compare', "
        "'reports.performance')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_days_scored_before_profiles_existed_are_profiled_once(published: World) -> None:
    from contextlib import closing

    from jobs.registry_access import open_registry
    from jobs.reporting import write_drift
    from jobs.warehouse import open_configured, warehouse

    cfg, reg = published.cfg, open_registry(published.cfg)
    count = (
        "SELECT count(*) FROM feature_profiles WHERE day = DATE '2026-04-05' "
        "AND column_name = 'amount'"
    )
    with warehouse(cfg.warehouse_path) as con:
        con.execute("DELETE FROM feature_profiles WHERE day = DATE '2026-04-05'")
    with closing(open_configured(cfg, read_only=True)) as con:  # a run's reports: read-only
        before, _ = write_drift(con, cfg, reg)
        assert con.execute(count).fetchall() == [(0,)]  # computed, not stored
    with warehouse(cfg.warehouse_path) as con:
        after, _ = write_drift(con, cfg, reg)
        assert con.execute(count).fetchall() == [(1,)]  # stored once
        assert (
            con.execute(
                "SELECT sum(n) FROM feature_profiles WHERE day = DATE '2026-04-05' "
                "AND column_name = 'amount'"
            ).fetchall()
            == con.execute(
                "SELECT count(*) FROM transactions WHERE event_time::DATE = DATE '2026-04-05'"
            ).fetchall()
        )
    assert before.n_current == after.n_current
    assert [f.name for f in before.features] == [f.name for f in after.features]
    for a, b in zip(before.features, after.features, strict=True):
        assert a.psi == pytest.approx(b.psi) and a.reasons == b.reasons
