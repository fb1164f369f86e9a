"""The simulated analyst (issue 18): reviews the world's alerts with some error, its decisions
come back through the dispositions feed, become labels, and the next model trains on them
before any chargeback of those days has arrived. Real warehouse, registry and LightGBM."""

from __future__ import annotations

from datetime import date

import duckdb

from jobs.analyst import AnalystOptions, frauds_of, review_alerts
from jobs.batch import run_batch
from jobs.config import load_config
from jobs.ingest import ingest_job
from jobs.registry_access import open_registry
from jobs.simulate import SimulationOptions
from jobs.training import load_training_data, resolve_window, train_version
from jobs.warehouse import configured_warehouse
from tests.conftest import WORLD_CARDS, World

WORLD = SimulationOptions(n_cards=WORLD_CARDS, n_merchants=150)


def test_the_analysts_decisions_become_labels_and_the_next_models_data(world: World) -> None:
    path = world.root / "config.toml"
    text = path.read_text().replace(
        "label_delay_days = 7\n",
        'label_delay_days = 7\ndispositions = "landing/dispositions/*.csv"\n',
    )
    path.write_text(text.replace("daily_budget = 20\n", "daily_budget = 20\nmax_age_days = 14\n"))
    cfg = load_config(path)
    (world.root / "landing" / "dispositions").mkdir()
    run_batch(cfg, reports=False)
    start, end = date(2026, 3, 24), date(2026, 4, 5)  # after the champion's training window
    with configured_warehouse(cfg) as con:
        before = load_training_data(con, cfg, resolve_window(con, cfg, start, end))
        reviewed = review_alerts(
            con,
            world.root / "landing" / "dispositions",
            seed=11,
            world=WORLD,
            analyst=AnalystOptions(miss_rate=0.05, false_alarm_rate=0.03, unreachable_rate=0.1),
        )
    assert reviewed.alerts > 100
    decided = reviewed.confirmed + reviewed.cleared
    assert reviewed.right / decided > 0.9  # some error, mostly right

    result = ingest_job(cfg)
    assert not result.problems and result.labels_loaded > 0
    con = duckdb.connect(str(cfg.warehouse_path), read_only=True)
    try:
        n, confirmed = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE is_fraud) FROM dispositions"
        ).fetchall()[0]
        alerted_days = sorted(
            d for (d,) in con.execute("SELECT DISTINCT alert_day FROM alerts").fetchall()
        )
        disposition_frauds = {
            t
            for (t,) in con.execute(
                "SELECT transaction_id FROM labels WHERE source = 'disposition' AND is_fraud"
            ).fetchall()
        }
    finally:
        con.close()
    assert (n, confirmed) == (reviewed.alerts, reviewed.confirmed)
    truth = frauds_of(alerted_days, 11, WORLD)
    assert len(disposition_frauds & truth) / len(disposition_frauds) > 0.85

    # the next model: its training data counts the confirmed frauds whose chargebacks have
    # not arrived yet
    with configured_warehouse(cfg, read_only=True) as con:
        after = load_training_data(con, cfg, resolve_window(con, cfg, start, end))
    frauds_before = int(before.frame["is_fraud"].sum())
    frauds_after = int(after.frame["is_fraud"].sum())
    assert frauds_after > frauds_before
    version = train_version(cfg, start=start, end=end, actor="tests")
    info = open_registry(cfg).get_version("fraud", version.version)
    assert round(info.lineage.fraud_rate * info.lineage.rows) == frauds_after
    assert info.lineage.fingerprint == after.fingerprint != before.fingerprint
