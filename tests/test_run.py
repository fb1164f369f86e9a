"""The batch run on the simulated world: score once, shadow, alerts, ledger, policy."""

from __future__ import annotations

import json
import shutil
from datetime import date
from email import policy
from email.parser import BytesParser
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pytest
from click.testing import CliRunner
from conftest import World

from jobs.batch import run_batch
from jobs.cli import cli
from jobs.config import load_config
from jobs.errors import FeatureMismatch, NoChampion
from jobs.features import compute_features, feature_spec
from jobs.loaded_model import inference_policy, load_model, predict
from jobs.reasons import top_reasons
from jobs.registry_access import open_registry
from jobs.scoring import _with_card_keys
from jobs.training import train_version
from jobs.warehouse import warehouse


def q(world: World, sql: str) -> list[tuple]:
    with duckdb.connect(str(world.cfg.warehouse_path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_run_scores_everything_once_and_alerts_within_policy(world: World) -> None:
    summary = run_batch(world.cfg, reports=False)
    assert summary.status == "ok"
    n = q(world, "SELECT count(*) FROM transactions")[0][0]
    assert summary.counts["score"]["scored"] == n
    assert q(world, "SELECT count(*), count(DISTINCT transaction_id) FROM scores") == [(n, n)]
    # a second run scores nothing new and duplicates nothing
    again = run_batch(world.cfg, reports=False)
    assert again.counts["score"]["scored"] == 0
    assert q(world, "SELECT count(*) FROM scores") == [(n,)]
    # policy: threshold, daily budget, one alert per card and day
    assert q(world, "SELECT min(score) >= 0.5 FROM alerts") == [(True,)]
    assert q(
        world, "SELECT max(c) <= 20 FROM (SELECT count(*) c FROM alerts GROUP BY alert_day)"
    ) == [(True,)]
    assert q(
        world,
        "SELECT max(c) FROM (SELECT count(*) c FROM alerts GROUP BY card_id, alert_day)",
    ) == [(1,)]
    reasons = json.loads(q(world, "SELECT reasons FROM alerts ORDER BY score DESC LIMIT 1")[0][0])
    # phrases with size and direction (their wording: tests/test_reasons.py)
    assert 1 <= len(reasons) <= 3 and all(isinstance(r, str) and r for r in reasons)
    # the ledger and the policy used
    runs = q(world, "SELECT job, status, policy FROM runs WHERE job = 'run' ORDER BY started_at")
    assert [r[:2] for r in runs] == [("run", "ok"), ("run", "ok")]
    assert json.loads(runs[0][2])["inference"] == {"missing": "native", "fill": {}}


def test_each_alert_carries_the_reasons_of_its_own_transaction(world: World) -> None:
    """Reasons are computed only for the rows the policy turns into alerts, and each alert
    gets its own: recomputed here from the features and the champion, they match."""
    summary = run_batch(world.cfg, reports=False)
    counts = summary.counts["score"]
    assert counts["above_threshold"] > counts["alerts_created"] > 0  # the budget turned some away
    stored = dict(q(world, "SELECT transaction_id, reasons FROM alerts"))
    assert len(stored) == counts["alerts_created"]
    with warehouse(world.cfg.warehouse_path) as con:
        con.execute("CREATE TEMP TABLE alerted AS SELECT DISTINCT transaction_id FROM alerts")
        feats = compute_features(con, world.cfg, ids_table="alerted")
    model = load_model(open_registry(world.cfg), "fraud", "champion")
    assert model is not None
    _, x = predict(model, feats, inference_policy(world.cfg.settings.scoring), 1)
    expected = top_reasons(model, x, feature_spec(world.cfg).descriptions, 1)
    ids = feats["transaction_id"].to_pylist()
    assert {tid: json.loads(stored[tid]) for tid in ids} == dict(zip(ids, expected, strict=True))
    assert all(1 <= len(r) <= 3 for r in expected)


def test_digest_in_the_file_outbox(world: World) -> None:
    run_batch(world.cfg, reports=False)
    files = sorted(world.cfg.outbox_dir.glob("*.eml"))
    assert len(files) == 1
    msg = BytesParser(policy=policy.default).parse(files[0].open("rb"))
    text = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    sent = q(world, "SELECT count(*) FROM alerts WHERE status = 'sent'")[0][0]
    assert f"{sent} fraud alert(s)" in msg["Subject"]
    top = q(world, "SELECT card_id FROM alerts ORDER BY score DESC LIMIT 1")[0][0]
    assert top not in text and top not in html  # card ids are masked
    assert "****" + top[-4:] in text


def test_shadow_challenger_scores_the_same_rows_without_alerts(world: World) -> None:
    v2 = train_version(world.cfg, start=date(2026, 3, 5), end=date(2026, 3, 26))
    run_batch(world.cfg, reports=False)
    rows = q(world, "SELECT role, model_version, count(*) FROM scores GROUP BY ALL ORDER BY 1")
    n = q(world, "SELECT count(*) FROM transactions")[0][0]
    assert rows == [("challenger", v2.version, n), ("champion", 1, n)]
    assert q(world, "SELECT DISTINCT model_version FROM alerts") == [(1,)]
    # each score carries its transaction's event time, card key and amount (schema v9: the
    # performance report reads its window from the scores alone)
    assert q(
        world,
        "SELECT count(*) FROM scores s JOIN transactions t USING (transaction_id) "
        "WHERE s.event_time = t.event_time AND s.card_key = t.card_key AND s.amount = t.amount",
    ) == [(2 * n,)]


def test_a_chunk_out_of_the_batch_order_gets_each_rows_own_card_key() -> None:
    con = duckdb.connect()
    con.execute(
        "CREATE TEMP TABLE fw_batch AS SELECT * FROM (VALUES ('a', TIMESTAMP '2026-01-01', 7), "
        "('b', TIMESTAMP '2026-01-02', NULL), ('c', TIMESTAMP '2026-01-03', 9)) "
        "v(transaction_id, event_time, card_key)"
    )
    in_order = pa.table({"transaction_id": ["a", "b", "c"]})
    assert _with_card_keys(con, in_order)["card_key"].to_pylist() == [7, None, 9]
    other = pa.table({"transaction_id": ["c", "a"]})
    assert _with_card_keys(con, other)["card_key"].to_pylist() == [9, 7]


def test_new_data_is_scored_by_the_next_run(world: World) -> None:
    run_batch(world.cfg, reports=False)
    world.land_days(date(2026, 4, 6))
    summary = run_batch(world.cfg, reports=False)
    new = q(world, "SELECT count(*) FROM transactions WHERE event_time >= '2026-04-06'")[0][0]
    assert summary.counts["ingest"]["rows_loaded"] == new
    assert summary.counts["score"]["scored"] == new
    # how far scoring got: every transaction ingested up to the mark has a champion score
    assert q(world, "SELECT model_name, scored_through, run_id FROM scoring_state") == [
        ("fraud", q(world, "SELECT max(ingested_at) FROM transactions")[0][0], summary.run_id)
    ]


def test_a_clock_that_went_back_hides_no_new_rows(world: World) -> None:
    # the first ingest and run happened while the clock was far ahead
    run_batch(world.cfg, reports=False)
    with warehouse(world.cfg.warehouse_path) as con:
        con.execute("UPDATE transactions SET ingested_at = TIMESTAMP '2099-01-01'")
        con.execute("UPDATE scoring_state SET scored_through = TIMESTAMP '2099-01-01'")
    world.land_days(date(2026, 4, 6))
    summary = run_batch(world.cfg, reports=False)
    new = q(world, "SELECT count(*) FROM transactions WHERE event_time >= '2026-04-06'")[0][0]
    assert new > 0 and summary.counts["score"]["scored"] == new
    assert q(world, "SELECT count(*) FROM transactions WHERE ingested_at <= '2099-01-01'") == [
        (q(world, "SELECT count(*) FROM transactions")[0][0] - new,)
    ]


def test_forgetting_the_scoring_state_searches_the_whole_history(world: World) -> None:
    run_batch(world.cfg, reports=False)
    # a row slipped in by hand with an old ingested_at is behind the mark: not searched
    with warehouse(world.cfg.warehouse_path) as con:
        con.execute(
            "INSERT INTO transactions SELECT * REPLACE ('by-hand' AS transaction_id, "
            "TIMESTAMP '2000-01-01' AS ingested_at) FROM transactions LIMIT 1"
        )
    assert run_batch(world.cfg, reports=False).counts["score"]["scored"] == 0
    # the documented remedy: forget the mark, and the next run searches everything
    with warehouse(world.cfg.warehouse_path) as con:
        con.execute("DELETE FROM scoring_state")
    assert run_batch(world.cfg, reports=False).counts["score"]["scored"] == 1
    assert q(world, "SELECT count(*) FROM scores WHERE transaction_id = 'by-hand'") == [(1,)]


def test_feature_chunks_and_batches_do_not_change_the_scores(world: World, tmp_path: Path) -> None:
    # the same backlog in small feature chunks and smaller scoring batches, in a copy
    other = tmp_path / "small-chunks"
    shutil.copytree(world.root, other)
    path = other / "config.toml"
    path.write_text(
        path.read_text().replace("batch_size = 5000", "batch_size = 700\nfeature_chunk_size = 1500")
    )
    small = run_batch(load_config(path), reports=False)
    whole = run_batch(world.cfg, reports=False)
    n = q(world, "SELECT count(*) FROM transactions")[0][0]
    assert small.counts["score"]["scored"] == whole.counts["score"]["scored"] == n
    assert small.counts["score"]["batches"] >= n // 1500 * 3  # 1500 = 700 + 700 + 100
    sql = "SELECT transaction_id, score FROM scores ORDER BY 1"
    with duckdb.connect(str(other / "var" / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute(sql).fetchall() == q(world, sql)


def test_no_champion_is_a_clear_message(world: World) -> None:
    reg = open_registry(world.cfg)
    reg.clear_alias("fraud", "champion", reason="test")
    with pytest.raises(NoChampion, match="fraudwatch train.*fraudwatch promote"):
        run_batch(world.cfg, reports=False)
    result = CliRunner().invoke(cli, ["run", "--config", str(world.cfg.path)])
    assert result.exit_code == 1
    assert "has no champion yet" in result.output
    assert q(world, "SELECT count(*) FROM scores") == [(0,)]
    assert q(world, "SELECT status FROM runs WHERE job = 'run'") == [("failed",), ("failed",)]


def test_feature_mismatch_fails_before_writing(world: World) -> None:
    text = world.cfg.path.read_text().replace(
        '[source.numeric_columns]\ndistance_km = "distance_km"\n', ""
    )
    world.cfg.path.write_text(text)
    from jobs.config import load_config

    cfg = load_config(world.cfg.path)
    with pytest.raises(FeatureMismatch) as info:
        run_batch(cfg, reports=False)
    assert info.value.missing == ["distance_km"]
    assert q(world, "SELECT count(*) FROM scores") == [(0,)]


def test_inference_policy_changes_without_a_new_version(world: World) -> None:
    with warehouse(world.cfg.warehouse_path) as con:
        con.execute("UPDATE transactions SET distance_km = NULL")
    world.cfg.path.write_text(
        world.cfg.path.read_text().replace(
            "[scoring]\n", '[scoring]\nmissing = "reference_median"\n'
        )
    )
    from jobs.config import load_config

    summary = run_batch(load_config(world.cfg.path), reports=False)
    assert summary.policy["inference"]["missing"] == "reference_median"
    assert [v.version for v in open_registry(world.cfg).list_versions("fraud")] == [1]


def test_run_json_cli(world: World) -> None:
    result = CliRunner().invoke(
        cli, ["run", "--config", str(world.cfg.path), "--json", "--no-reports"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "ok"
    assert set(data["counts"]) >= {"ingest", "score", "alerts"}
    # the scoring stage's own steps: the models' thread's add up to the stage's time; the
    # writer's (profiles, writes) overlap the next batch's predict, inside the stage too
    steps = data["counts"]["score"]["seconds"]
    assert set(steps) == {"backlog", "features", "predict", "profile", "write", "write_wait"}
    assert data["counts"]["score"]["scored"] > 0 and steps["features"] > 0 < steps["predict"]
    assert steps["write"] > 0 and steps["profile"] > 0
    stage = data["counts"]["seconds"]["score"] + 0.01
    assert steps["backlog"] + steps["features"] + steps["predict"] + steps["write_wait"] <= stage
    assert steps["profile"] + steps["write"] <= stage


def test_a_tampered_champion_is_refused_before_anything_is_scored(world: World) -> None:
    reg = open_registry(world.cfg)
    info = reg.get_version("fraud", world.champion)
    path = reg.artifacts.path_for(info.artifact_sha256)
    path.write_text(path.read_text().replace("num_leaves=", "num_leaves=9", 1))
    result = CliRunner().invoke(cli, ["run", "--config", str(world.cfg.path), "--no-reports"])
    assert result.exit_code == 1
    assert "was changed" in result.output and "refusing to load it" in result.output
    assert q(world, "SELECT count(*) FROM scores") == [(0,)]
    assert q(world, "SELECT count(*) FROM alerts") == [(0,)]
    assert q(world, "SELECT status FROM runs WHERE job = 'run'") == [("failed",)]


def test_every_query_in_the_readme_runs_on_a_warehouse_after_a_run(world: World) -> None:
    """The analysts' first queries in the README work as printed (the ```sql blocks; a block
    for a Spark deployment's Parquet tables is fenced ```sql spark)."""
    run_batch(world.cfg, reports=False)
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```sql\n")[1:]]
    statements = [s.strip() for b in blocks for s in b.split(";") if s.strip()]
    assert len(statements) >= 4
    with duckdb.connect(str(world.cfg.warehouse_path), read_only=True) as con:
        results = {s: con.execute(s).fetchall() for s in statements}
    timing = next(rows for sql, rows in results.items() if "$.score.seconds" in sql)
    stages, scoring = json.loads(timing[0][1]), json.loads(timing[0][2])
    assert set(stages) >= {"ingest", "score", "alerts"}
    assert set(scoring) >= {"backlog", "features", "predict", "write"}


def test_analysts_read_while_a_long_run_goes_on_and_a_second_run_fails_fast(
    world: World,
) -> None:
    """The run holds the warehouse only while it writes: an analyst's read-only connection
    and `fraudwatch alerts list` work alongside it (here during a delivery to an SMTP server
    that never answers), a second run fails fast on the writer lock, and an analyst's
    session open when the run starts only makes it wait."""
    import socket
    import subprocess
    import sys
    import time

    silent = socket.socket()  # an SMTP server that never says a word (the kernel accepts)
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    silent_port = silent.getsockname()[1]
    world.land_days(date(2026, 4, 6), days=2)
    text = world.cfg.path.read_text().replace('channels = ["file"]', 'channels = ["file", "email"]')
    text += (
        f'\n[alerts.email]\nhost = "127.0.0.1"\nport = {silent_port}\nsecurity = "none"\n'
        'sender = "fw@example.com"\nrecipients = ["fraud@example.com"]\n'
        'username_env = "FW_TEST_UNSET"\npassword_env = "FW_TEST_UNSET_PW"\n'
        "timeout_seconds = 8\n"
    )
    world.cfg.path.write_text(text)
    path = str(world.cfg.warehouse_path)
    fw = [sys.executable, "-m", "jobs.cli_main"]
    analyst = duckdb.connect(path, read_only=True)  # open before the run starts
    run = subprocess.Popen(
        [*fw, "run", "--no-reports", "--config", str(world.cfg.path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.0)
    assert run.poll() is None  # waiting for the analyst to let go
    analyst.close()
    second = subprocess.run(
        [*fw, "run", "--config", str(world.cfg.path)], capture_output=True, text=True, timeout=60
    )
    assert second.returncode == 1 and "in use by another fraudwatch process" in second.stderr
    reads, alerts, listed = 0, 0, None
    while run.poll() is None:
        try:
            with duckdb.connect(path, read_only=True) as con:
                alerts = con.execute("SELECT count(*) FROM alerts").fetchall()[0][0]
                reads += 1
        except duckdb.IOException:
            pass  # a write in progress: the file is locked while it writes
        if alerts and listed is None and run.poll() is None:  # once scoring made alerts
            listed = subprocess.run(
                [*fw, "alerts", "list", "--config", str(world.cfg.path)],
                capture_output=True,
                text=True,
                timeout=60,
            )
        time.sleep(0.2)
    _, err = run.communicate()
    silent.close()
    assert run.returncode == 0, err[-2000:]
    assert reads > 0, "no read-only connection got in during the run"
    assert listed is not None and listed.returncode == 0, listed and listed.stderr
    assert "pending" in listed.stdout or "sent" in listed.stdout
    assert q(world, "SELECT status FROM runs WHERE job = 'run'") == [("ok",)]


def test_a_run_with_a_broken_and_a_changed_landing_file_scores_the_rest_and_needs_attention(
    world: World,
) -> None:
    """An unreadable file (named first) does not stop the batch: the day after it and the
    labels are ingested and scored; it and a file changed since its ingestion are named in
    the summary and the ledger, and the run exits 1."""
    tx = world.root / "landing" / "transactions"
    (tx / "0000-broken.parquet").write_text("transaction_id,event_time\nx,2026-04-06\n")
    first = sorted(tx.glob("2026-*.parquet"))[0]
    frame = pl.read_parquet(first)
    changed = frame.with_columns(pl.col("amount") * 2).head(5)
    pl.concat([changed, frame.slice(5)]).write_parquet(first)  # five amounts rewritten
    world.land_days(date(2026, 4, 6), days=1)
    result = CliRunner().invoke(
        cli, ["run", "--no-reports", "--json", "--config", str(world.cfg.path)]
    )
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "needs_attention"
    problems = summary["counts"]["ingest"]["problems"]
    assert summary["error"] == "; ".join(problems)
    assert problems[0].startswith("landing/transactions/0000-broken.parquet set aside")
    assert problems[1].startswith(
        f"landing/transactions/{first.name} changed after it was ingested: 0 row(s) loaded, "
    )
    assert q(world, "SELECT status FROM runs WHERE job = 'run'") == [("needs_attention",)]
    # the new day arrived and was scored: nothing after the broken file was held back
    new = q(world, "SELECT count(*) FROM transactions WHERE event_time >= '2026-04-06'")[0][0]
    assert new > 0
    assert q(
        world, "SELECT count(*) FROM transactions t ANTI JOIN scores s USING (transaction_id)"
    ) == [(0,)]
    assert q(
        world,
        "SELECT count(*) FROM quarantine WHERE reason = 'changed_after_ingest' AND field = 'amount'",
    ) == [(5,)]
    assert q(
        world, "SELECT path, status FROM ingested_files WHERE status <> 'ingested' ORDER BY 1"
    ) == [
        ("landing/transactions/0000-broken.parquet", "set_aside"),
        (f"landing/transactions/{first.name}", "changed"),
    ]
    # the next run writes the reports: the index names both files and why, for analysts
    again = CliRunner().invoke(cli, ["run", "--json", "--config", str(world.cfg.path)])
    assert again.exit_code in (0, 1), again.output
    index = (world.cfg.reports_dir / "index.html").read_text()
    assert "Landing files that need a person" in index
    landing = index[index.index('id="landing"') :]
    assert "landing/transactions/0000-broken.parquet" in landing and "set aside" in landing
    assert f"landing/transactions/{first.name}" in landing and "changed" in landing
