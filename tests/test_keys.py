"""Keyed state (jobs/keys.py): keys and known frauds kept in step with transactions and labels,
rebuilt from them, and backfilled by the migration into a warehouse of the previous schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
from click.testing import CliRunner

from jobs.cli import cli
from jobs.config import Config
from jobs.keys import assign_keys, keys_current, rebuild_keys
from jobs.warehouse import MIGRATIONS, SCHEMA_VERSION, open_warehouse, transaction

T0 = datetime(2026, 3, 2, 12, 0)


def _add_tx(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    for tid, t, card, merchant, amount in rows:
        con.execute(
            "INSERT INTO transactions (transaction_id, event_time, card_id, merchant_id, amount, "
            "source_file, source_row, ingested_at) VALUES (?, ?, ?, ?, ?, 'test', 0, now())",
            [tid, t, card, merchant, amount],
        )


def _add_label(con: duckdb.DuckDBPyConnection, tid: str, fraud: bool, reported: datetime) -> None:
    con.execute(
        "INSERT INTO labels (transaction_id, is_fraud, reported_at, source_file, source_row, "
        "ingested_at) VALUES (?, ?, ?, 'test', 0, now())",
        [tid, fraud, reported],
    )


def _keyed(con: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
    rows = con.execute(
        "SELECT t.transaction_id, c.card_id, m.merchant_id, t.amount_e4 FROM transactions t "
        "JOIN card_keys c USING (card_key) JOIN merchant_keys m USING (merchant_key)"
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


def _frauds(con: duckdb.DuckDBPyConnection) -> set[tuple]:
    return set(
        con.execute(
            "SELECT f.transaction_id, m.merchant_id, f.tx_time, f.reported_at, f.revoked_at "
            "FROM known_frauds f LEFT JOIN merchant_keys m USING (merchant_key)"
        ).fetchall()
    )


def test_assign_keys_keeps_keys_and_known_frauds_in_step(tmp_path: Path) -> None:
    con = open_warehouse(tmp_path / "w.duckdb")
    _add_tx(con, [("a", T0, "c1", "m1", 10.5), ("b", T0, "c2", "m1", 1e20)])
    _add_label(con, "a", True, T0 + timedelta(days=3))
    _add_label(con, "a", True, T0 + timedelta(days=2))  # the first report counts
    _add_label(con, "z", True, T0 + timedelta(days=1))  # a chargeback before its transaction
    _add_label(con, "b", False, T0 + timedelta(days=1))  # legitimate: no known fraud
    assert not keys_current(con)  # written without assign_keys: the features must not trust it
    with transaction(con):
        done = assign_keys(con)
    assert (done.rows_keyed, done.cards_added, done.merchants_added) == (2, 2, 1)
    assert keys_current(con)
    # an amount in 1/10,000ths, exactly; an absurd one (above 10^14) has none, as in means
    assert _keyed(con) == {"a": ("c1", "m1", 105000), "b": ("c2", "m1", None)}
    assert _frauds(con) == {
        ("a", "m1", T0, T0 + timedelta(days=2), None),
        ("z", None, None, T0 + timedelta(days=1), None),
    }
    # z's transaction arrives: it takes its merchant and time; c1 keeps its key
    _add_tx(con, [("z", T0 - timedelta(hours=1), "c3", "m2", 3.0), ("c", T0, "c1", "m2", 1.0)])
    assert not keys_current(con)
    with transaction(con):
        again = assign_keys(con)
    assert (again.rows_keyed, again.cards_added, again.merchants_added) == (2, 1, 1)
    assert not again.whole_refresh
    assert _keyed(con)["c"] == ("c1", "m2", 10000)
    assert ("z", "m2", T0 - timedelta(hours=1), T0 + timedelta(days=1), None) in _frauds(con)
    with transaction(con):
        idle = assign_keys(con)  # nothing new: nothing done
    assert idle.rows_keyed == idle.frauds_refreshed == 0 and keys_current(con)
    # a deletion (ingest --reingest drops rows): known_frauds is refreshed whole
    con.execute("DELETE FROM transactions WHERE transaction_id = 'a'")
    assert not keys_current(con)
    with transaction(con):
        gone = assign_keys(con)
    assert gone.whole_refresh
    assert ("a", None, None, T0 + timedelta(days=2), None) in _frauds(con)
    assert keys_current(con)


def test_a_failed_transaction_leaves_no_keys(tmp_path: Path) -> None:
    con = open_warehouse(tmp_path / "w.duckdb")
    _add_tx(con, [("a", T0, "c1", "m1", 10.0)])
    try:
        with transaction(con):
            assign_keys(con)
            raise KeyboardInterrupt  # killed before COMMIT
    except KeyboardInterrupt:
        pass
    assert con.execute("SELECT count(*) FROM card_keys").fetchall()[0][0] == 0
    assert con.execute("SELECT card_key FROM transactions").fetchall() == [(None,)]
    assert not keys_current(con)


def test_rebuild_gives_the_same_state(tmp_path: Path) -> None:
    con = open_warehouse(tmp_path / "w.duckdb")
    _add_tx(
        con,
        [(f"t{i}", T0 + timedelta(hours=i), f"c{i % 3}", f"m{i % 2}", i * 1.25) for i in range(9)],
    )
    _add_label(con, "t4", True, T0 + timedelta(days=1))
    with transaction(con):
        assign_keys(con)
    before, frauds = _keyed(con), _frauds(con)
    with transaction(con):
        rebuilt = rebuild_keys(con)
    assert rebuilt.rows_keyed == 9 and rebuilt.whole_refresh
    assert _keyed(con) == before and _frauds(con) == frauds
    assert keys_current(con)


def test_migration_backfills_a_warehouse_of_the_previous_schema(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    old = duckdb.connect(str(path))
    old.execute(
        "CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)"
    )
    for version, step in enumerate(MIGRATIONS[:6], start=1):  # the schema before the keys (v7)
        old.execute(step)
        old.execute("INSERT INTO schema_version VALUES (?, now())", [version])
    _add_tx(old, [("a", T0, "c1", "m1", 10.0), ("b", T0, "c2", "m2", 0.12345)])
    _add_label(old, "b", True, T0 + timedelta(days=1))
    _add_label(old, "q", True, T0 + timedelta(days=1))
    assert "card_key" not in [r[0] for r in old.execute("DESCRIBE transactions").fetchall()]
    old.close()
    con = open_warehouse(path)  # migrates
    assert con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0] == SCHEMA_VERSION
    # 0.12345 (a double a hair above) rounds as amount_exact() rounds it
    assert _keyed(con) == {"a": ("c1", "m1", 100000), "b": ("c2", "m2", 1235)}
    assert _frauds(con) == {
        ("b", "m2", T0, T0 + timedelta(days=1), None),
        ("q", None, None, T0 + timedelta(days=1), None),
    }
    assert keys_current(con)


def test_rebuild_keys_command(write_config: Callable[..., Config]) -> None:
    cfg = write_config()
    con = open_warehouse(cfg.warehouse_path, extra_columns=cfg.extra_columns())
    _add_tx(con, [("a", T0, "c1", "m1", 10.0), ("b", T0, "c2", "m1", 5.0)])
    con.close()
    out = CliRunner().invoke(
        cli, ["warehouse", "rebuild-keys", "--config", str(cfg.path), "--json"]
    )
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["ok"] and result["rows_keyed"] == 2 and result["cards_added"] == 2
    con = open_warehouse(cfg.warehouse_path, extra_columns=cfg.extra_columns())
    assert keys_current(con) and set(_keyed(con)) == {"a", "b"}
    helped = CliRunner().invoke(cli, ["warehouse", "rebuild-keys", "--help"])
    assert "Example: fraudwatch warehouse rebuild-keys" in helped.output


def test_ingest_keys_rows_as_it_inserts_them_and_chargebacks_that_came_first_find_them(
    tmp_path: Path, write_config: Callable[..., Config]
) -> None:
    from jobs.ingest import ingest
    from jobs.simulate import SimulationOptions, simulate

    simulate(
        tmp_path / "landing",
        start=date(2026, 1, 5),
        days=14,
        seed=5,
        options=SimulationOptions(n_cards=120, n_merchants=30),
    )
    held = tmp_path / "held"
    held.mkdir()
    late = sorted((tmp_path / "landing" / "transactions").iterdir())[-4:]
    for path in late:  # the last days' transactions arrive after their chargebacks
        path.rename(held / path.name)
    cfg = write_config()
    con = open_warehouse(cfg.warehouse_path, extra_columns=cfg.extra_columns())
    ingest(con, cfg)
    waiting = con.execute(
        "SELECT count(*) FROM known_frauds WHERE merchant_key IS NULL"
    ).fetchall()[0][0]
    assert waiting > 0 and keys_current(con)
    for path in late:
        (held / path.name).rename(path)
    ingest(con, cfg)
    assert keys_current(con)
    assert con.execute("SELECT count(*) FROM transactions WHERE card_key IS NULL").fetchall() == [
        (0,)
    ]
    keyed, frauds = _keyed(con), _frauds(con)
    assert sum(1 for f in frauds if f[1] is None) < waiting  # they found their transactions
    with transaction(con):
        rebuild_keys(con)
    assert _keyed(con) == keyed and _frauds(con) == frauds
