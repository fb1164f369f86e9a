"""Crash safety: `fraudwatch run`, `fraudwatch promote`, `fraudwatch ingest` while it sets
files aside and `fraudwatch alerts retry --failed` while it re-queues, killed with SIGKILL at
random moments, and `fraudwatch run` killed at each of its stages (as its log reaches it).
The keyed state (jobs/keys.py) written with the rows stays consistent with them, and a
rebuild from `transactions` and `labels` gives the same.

A handful of seeded trials run in CI; ``FRAUDWATCH_FULL=1`` runs 30 of each.
After each kill the command is run again to completion, then the invariants
are checked on the real warehouse and registry.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest
from conftest import World

FULL = os.environ.get("FRAUDWATCH_FULL") == "1"
TRIALS = 30 if FULL else 3


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "jobs.cli_main", *args]


def kill_at(cmd: list[str], delay: float) -> int:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    return proc.wait(60)


def kill_when(cmd: list[str], message: str, what: str | None, delay: float) -> int:
    """Run ``cmd`` (logging debug JSON lines) and SIGKILL it ``delay`` s after it logs
    ``message`` (with the field ``what``, if given); returns its exit code (killed: -9)."""
    proc = subprocess.Popen(
        [*cmd[:3], "--log-level", "debug", *cmd[3:]],  # python -m jobs.cli_main --log-level
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        try:
            got = json.loads(line)
        except ValueError:
            continue
        if got.get("msg") == message and (what is None or got.get("what") == what):
            time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            break
    proc.stderr.close()
    return proc.wait(60)


def _key_state(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """The keyed state in terms of ids (keys are numbered differently by a rebuild)."""
    q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
    return {
        "rows": q(
            "SELECT t.transaction_id, c.card_id IS NOT DISTINCT FROM t.card_id, "
            "m.merchant_id IS NOT DISTINCT FROM t.merchant_id, t.amount_e4 FROM transactions t "
            "LEFT JOIN card_keys c USING (card_key) LEFT JOIN merchant_keys m USING (merchant_key) "
            "ORDER BY 1"
        ),
        "frauds": q(
            "SELECT f.transaction_id, m.merchant_id, f.tx_time, f.reported_at, f.revoked_at "
            "FROM known_frauds f LEFT JOIN merchant_keys m USING (merchant_key) ORDER BY ALL"
        ),
        "dictionaries": q(
            "SELECT (SELECT count(*) FROM card_keys), (SELECT count(DISTINCT card_id) FROM "
            "transactions), (SELECT count(*) FROM merchant_keys), "
            "(SELECT count(DISTINCT merchant_id) FROM transactions)"
        ),
    }


def check_keys(path: Path) -> None:
    """Every row keyed by its own card and merchant, the state current, and a rebuild from
    ``transactions`` and ``labels`` (on a copy) gives the same state."""
    from jobs.keys import keys_current, rebuild_keys

    with duckdb.connect(str(path), read_only=True) as con:
        assert keys_current(con)
        kept = _key_state(con)
    assert kept["rows"] and all(card and merchant for _, card, merchant, _ in kept["rows"])
    copy = path.parent / "rebuilt.duckdb"
    shutil.copy(path, copy)
    with duckdb.connect(str(copy)) as con:
        con.execute("BEGIN")
        rebuild_keys(con)
        con.execute("COMMIT")
        assert _key_state(con) == kept
    copy.unlink()


def check_warehouse(world: World) -> None:
    with duckdb.connect(str(world.cfg.warehouse_path), read_only=True) as con:
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        n = q("SELECT count(*) FROM transactions")[0][0]
        # every transaction scored exactly once per model version
        assert q(
            "SELECT count(*) FROM (SELECT transaction_id, model_version FROM scores GROUP BY ALL HAVING count(*) > 1)"
        ) == [(0,)]
        assert q("SELECT count(*) FROM scores WHERE role = 'champion'") == [(n,)]
        # no file half ingested
        assert q(
            "SELECT count(*) FROM ingested_files f WHERE f.feed = 'transactions' AND f.rows_loaded <> "
            "(SELECT count(*) FROM transactions t WHERE t.source_file = f.path)"
        ) == [(0,)]
        assert q(
            "SELECT count(*) FROM transactions WHERE source_file NOT IN (SELECT path FROM ingested_files)"
        ) == [(0,)]
        # every alert-worthy transaction has an alert (sent or pending), unless its day's budget
        # is used up or its card already has an alert that day
        budget = world.cfg.settings.alerts.daily_budget
        missing = q(
            f"""
            WITH latest AS (SELECT max(event_time) AS m FROM transactions),
            worthy AS (
                SELECT s.transaction_id, t.card_id, CAST(t.event_time AS DATE) AS day
                FROM scores s JOIN transactions t USING (transaction_id), latest
                WHERE s.role = 'champion' AND s.score >= {world.cfg.settings.alerts.threshold}
                  AND t.event_time >= latest.m - INTERVAL {int(world.cfg.settings.alerts.max_age_days * 24)} HOUR
            )
            SELECT count(*) FROM worthy w
            WHERE w.transaction_id NOT IN (SELECT transaction_id FROM alerts)
              AND (SELECT count(DISTINCT transaction_id) FROM alerts a WHERE a.alert_day = w.day) < {budget}
              AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.card_id = w.card_id AND a.alert_day = w.day)
            """
        )
        assert missing == [(0,)]
        assert q("SELECT count(*) FROM alerts WHERE status NOT IN ('sent', 'pending')") == [(0,)]


@pytest.mark.parametrize("seed", range(TRIALS))
def test_run_killed_at_random_moments(world: World, seed: int) -> None:
    world.land_days(date(2026, 4, 6), days=3)
    text = world.cfg.path.read_text().replace(
        "batch_size = 5000", "batch_size = 2000\nfeature_chunk_size = 5000"
    )
    world.cfg.path.write_text(text)
    rng = random.Random(seed)
    cmd = cli("run", "--config", str(world.cfg.path), "--no-reports")
    code = kill_at(cmd, rng.uniform(1.0, 6.0))
    finished = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    check_warehouse(world)
    with duckdb.connect(str(world.cfg.warehouse_path), read_only=True) as con:
        statuses = [
            r[0]
            for r in con.execute(
                "SELECT status FROM runs WHERE job = 'run' ORDER BY started_at"
            ).fetchall()
        ]
    assert statuses[-1] == "ok" and len(statuses) in (1, 2)
    if code != -signal.SIGKILL:  # it finished before the kill
        assert code == 0 and statuses[0] == "ok"
    elif len(statuses) == 2:  # killed after its ledger row was written: the ledger shows it,
        # unless the kill came after the run had committed (while the process was exiting)
        assert statuses[0] in ("interrupted", "ok")
    check_keys(world.cfg.warehouse_path)


def test_run_killed_while_scoring_rows_with_random_ids_scores_each_once(world: World) -> None:
    # UUIDs do not grow with time: no id range bounds the search for what is already scored,
    # the scores' event times do (jobs.scoring.SAME_ROWS)
    from jobs.simulate import SimulationOptions, simulate

    simulate(
        world.root / "landing",
        start=date(2026, 4, 6),
        days=3,
        seed=11,
        options=SimulationOptions(n_cards=600, n_merchants=150, random_ids=True),
    )
    text = world.cfg.path.read_text().replace(
        "batch_size = 5000", "batch_size = 2000\nfeature_chunk_size = 5000"
    )
    world.cfg.path.write_text(text)
    cmd = cli("run", "--config", str(world.cfg.path), "--no-reports")
    assert kill_when(cmd, "write window", "scores", 0.0) == -signal.SIGKILL
    finished = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    check_warehouse(world)
    with duckdb.connect(str(world.cfg.warehouse_path), read_only=True) as con:
        new = con.execute(
            "SELECT count(*), count(DISTINCT s.transaction_id) FROM transactions t "
            "JOIN scores s USING (transaction_id) WHERE t.event_time >= '2026-04-06' "
            "AND s.role = 'champion' AND t.transaction_id NOT LIKE 'tx%'"
        ).fetchall()
    assert new[0][0] > 2000 and new[0][0] == new[0][1]  # more than the batch killed after
    check_keys(world.cfg.warehouse_path)


# the run's log, stage by stage: after its ledger row, in ingest (after a group of files is
# written, while the next is staged), at the scoring backlog, after a scoring batch's write
# window, after scoring (before delivery)
STAGES = [
    ("run started", None),
    ("file ingested", None),
    ("scoring backlog", None),
    ("write window", "scores"),
    ("scoring done", None),
]


@pytest.mark.parametrize(("stage", "what"), STAGES)
def test_run_killed_at_each_stage_finishes_on_the_next_run(
    world: World, stage: str, what: str | None
) -> None:
    world.land_days(date(2026, 4, 6), days=3)
    text = world.cfg.path.read_text().replace(
        "batch_size = 5000", "batch_size = 2000\nfeature_chunk_size = 5000"
    )
    world.cfg.path.write_text(text)
    cmd = cli("run", "--config", str(world.cfg.path), "--no-reports")
    code = kill_when(cmd, stage, what, random.Random(stage).uniform(0.0, 0.2))
    assert code == -signal.SIGKILL, f"the run ended ({code}) before it was killed at {stage!r}"
    finished = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    check_warehouse(world)
    check_keys(world.cfg.warehouse_path)


@pytest.mark.parametrize("seed", range(TRIALS))
def test_promote_killed_mid_way_keeps_alias_and_history_in_agreement(
    world: World, seed: int
) -> None:
    from jobs.training import train_version

    v2 = train_version(world.cfg, start=date(2026, 3, 5), end=date(2026, 3, 26))
    rng = random.Random(seed)
    cmd = cli(
        "promote",
        str(v2.version),
        "--force",
        "--reason",
        "crash test",
        "--config",
        str(world.cfg.path),
    )
    kill_at(cmd, rng.uniform(0.5, 4.0))
    db = world.cfg.registry_url.removeprefix("sqlite:///")
    with sqlite3.connect(db) as s:
        assert s.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        alias = s.execute("SELECT version FROM aliases WHERE alias = 'champion'").fetchone()[0]
        chain = s.execute(
            "SELECT from_version, to_version FROM alias_events WHERE alias = 'champion' ORDER BY id"
        ).fetchall()
    assert chain[-1][1] == alias
    for (_, prev_to), (nxt_from, _) in zip(chain, chain[1:], strict=False):
        assert nxt_from == prev_to
    assert alias in (1, v2.version)


def _ledger_agrees(con: duckdb.DuckDBPyConnection, files: list[str]) -> None:
    """Every landing file in the ledger once; a set-aside file left nothing; an ingested
    file's rows and quarantine are exactly what its ledger row says."""
    q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
    assert sorted(p for (p,) in q("SELECT path FROM ingested_files")) == sorted(files)
    assert q(
        "SELECT count(*) FROM ingested_files f WHERE rows_loaded <> "
        "(SELECT count(*) FROM transactions t WHERE t.source_file = f.path) OR rows_quarantined <> "
        "(SELECT count(*) FROM quarantine x WHERE x.source_file = f.path)"
    ) == [(0,)]
    assert q(
        "SELECT count(*) FROM ingested_files WHERE status = 'set_aside' AND rows_loaded > 0"
    ) == [(0,)]


@pytest.mark.parametrize("seed", range(TRIALS))
def test_ingest_killed_while_setting_files_aside(tmp_path, seed: int) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    landing = tmp_path / "landing"
    landing.mkdir()
    (tmp_path / "config.toml").write_text(
        'data_dir = "var"\n[source]\ntransactions = "landing/*"\n'
    )
    header = "transaction_id,event_time,card_id,merchant_id,amount\n"
    names, good_rows = [], 0
    for i in range(16):
        name = f"f{i:02d}"
        kind = rng.choice(["good", "good", "ragged", "empty", "fake"])
        if kind == "empty":
            (landing / f"{name}.csv").write_bytes(b"")
            names.append(f"landing/{name}.csv")
            continue
        if kind == "fake":
            (landing / f"{name}.parquet").write_text(header + "x,2026-03-01,c,m,1\n")
            names.append(f"landing/{name}.parquet")
            continue
        with (landing / f"{name}.csv").open("w") as fh:
            fh.write(header)
            for r in range(40_000):
                if kind == "ragged" and r % 997 == 0:
                    fh.write(f"{name}-{r},2026-03-01 10:00:00,c{r % 50},m,1,extra\n")
                else:
                    good_rows += 1
                    fh.write(f"{name}-{r},2026-03-01 10:00:00,c{r % 50},m{r % 7},{r}.5\n")
        names.append(f"landing/{name}.csv")
    cmd = cli("ingest", "--config", str(tmp_path / "config.toml"))
    kill_at(cmd, rng.uniform(0.5, 5.0))
    finished = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert finished.returncode in (0, 1), finished.stderr[-2000:]
    with duckdb.connect(str(tmp_path / "var" / "warehouse.duckdb"), read_only=True) as con:
        _ledger_agrees(con, names)
        assert con.execute("SELECT count(*) FROM transactions").fetchall() == [(good_rows,)]
    check_keys(tmp_path / "var" / "warehouse.duckdb")


@pytest.mark.parametrize("seed", range(TRIALS))
def test_alerts_retry_killed_during_the_requeue_loses_nothing(tmp_path, seed: int) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime, timedelta

    import polars as pl

    from jobs.alerting import create_alerts
    from jobs.config import load_config
    from jobs.warehouse import open_warehouse

    rng = random.Random(seed)
    (tmp_path / "config.toml").write_text(
        'data_dir = "var"\n[source]\ntransactions = "landing/*"\n'
        '[alerts]\nchannels = ["file"]\ndaily_budget = 1000\nmax_attempts = 1\n'
    )
    cfg = load_config(tmp_path / "config.toml")
    n = 3000
    t0 = datetime(2026, 3, 2, 10)
    frame = pl.DataFrame(
        {
            "transaction_id": [f"a{i:05d}" for i in range(n)],
            "event_time": [t0 + timedelta(days=i // 1000, seconds=i) for i in range(n)],
            "card_id": [f"card{i:05d}" for i in range(n)],
            "merchant_id": ["m"] * n,
            "amount": [1.0] * n,
            "score": [0.9] * n,
            "model_name": ["fraud"] * n,
            "model_version": [1] * n,
            "reasons": ["[]"] * n,
        }
    )
    con = open_warehouse(cfg.warehouse_path)
    con.execute("BEGIN")
    create_alerts(con, cfg.settings.alerts, frame, "run-1")
    con.execute("COMMIT")
    con.close()
    cfg.outbox_dir.write_text("a file where the outbox folder should be")  # the channel fails
    send = subprocess.run(
        cli("alerts", "send", "--config", str(cfg.path)), capture_output=True, text=True
    )
    assert send.returncode == 1 and "needs attention" in send.stderr
    cfg.outbox_dir.unlink()  # the outage ends
    cmd = cli("alerts", "retry", "--failed", "--config", str(cfg.path))
    kill_at(cmd, rng.uniform(0.5, 4.0))
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
        states = dict(con.execute("SELECT status, count(*) FROM alerts GROUP BY 1").fetchall())
    assert sum(states.values()) == n and set(states) <= {"failed", "pending", "sent"}
    finished = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
        assert con.execute("SELECT status, count(*) FROM alerts GROUP BY 1").fetchall() == [
            ("sent", n)
        ]
    from email import policy
    from email.parser import BytesParser

    delivered = set()
    for eml in cfg.outbox_dir.glob("*.eml"):
        msg = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
        text = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        delivered |= {w for w in text.split() if w.startswith("a0") and len(w) == 6}
    assert delivered == {f"a{i:05d}" for i in range(n)}  # at least once each, none lost
