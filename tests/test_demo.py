"""The demo's story end to end, at a smaller scale: each step's outcome is checked."""

from __future__ import annotations

from pathlib import Path

import duckdb

from jobs.demo import DemoPlan, run_demo
from jobs.keys import keys_current
from jobs.performance_report import performance_report
from jobs.registry_access import open_registry
from jobs.warehouse import configured_warehouse
from tests.approx import assert_close

SMALL = DemoPlan(
    initial_days=42,
    batch_days=14,
    new_pattern_day=22,
    defect_days=(30, 38),
    v1_window=(0, 18),
    v2_after_day=44,
    v2_window=(24, 38),
    v3_window=(20, 30),
    n_cards=900,
    report_every=7,
)


def test_the_whole_story(tmp_path: Path) -> None:
    said: list[str] = []
    result = run_demo(None, tmp_path / "demo", SMALL, say=said.append)
    text = "\n".join(said)
    assert result.steps == ["v1 promoted", "v2 refused", "v3 promoted"], text
    from jobs.config import load_config

    cfg = load_config(result.config_path)
    reg = open_registry(cfg)
    # 1-2: v1 served as champion, batches scored and alerted, digests in the outbox
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
        scored = con.execute("SELECT count(*) FROM scores WHERE role = 'champion'").fetchall()[0][0]
        total = con.execute("SELECT count(*) FROM transactions").fetchall()[0][0]
        runs = con.execute(
            "SELECT count(*) FROM runs WHERE job = 'run' AND status = 'ok'"
        ).fetchall()[0][0]
    assert scored == total and runs == SMALL.batch_days + 1
    assert len(list(cfg.outbox_dir.glob("*.eml"))) >= SMALL.batch_days // 2
    # 3: v2's lineage names the cause
    v2 = reg.get_version("fraud", 2)
    assert v2.lineage.data_quality["status"] == "failed"
    assert "distance_km" in v2.lineage.data_quality["reasons"][0]
    assert "the gate refused version 2" in text
    # 4: v3 won honestly (no force) and the webhook receiver got the signed event
    champion = reg.history("fraud", "champion")[-1]
    assert (champion.to_version, champion.kind) == (3, "promote")
    assert champion.verdict is not None and champion.verdict["passed"] is True
    moved = [e for e in result.webhook_events if e["payload"].get("alias") == "champion"]
    assert moved and all(e["verified"] for e in moved)
    assert moved[-1]["payload"]["version"] == 3
    # 5: where things are
    assert (cfg.reports_dir / "index.html").exists()
    assert "SELECT a.alert_day" in text and str(cfg.warehouse_path) in text
    # 6: the runs' performance reports kept their days (real ingest, scoring, delayed
    # chargebacks, two champions); the report from them is the whole window's
    assert any(cfg.performance_days_dir.rglob("*.parquet"))
    with configured_warehouse(cfg, read_only=True) as con:
        assert keys_current(con)
        kept = performance_report(con, cfg, reg)
        whole = performance_report(con, cfg, reg, keep_days=False)
    assert kept[0][0].n_frauds > 0
    assert_close(kept, whole)
