"""Ingest on real landing files and a real DuckDB warehouse."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner

from jobs.cli import cli
from jobs.config import Config
from jobs.errors import WarehouseLocked
from jobs.ingest import ingest
from jobs.warehouse import configured_warehouse, open_warehouse, warehouse

RENAMED = """
data_dir = "var"

[source]
transactions = "landing/*.csv"

[source.columns]
transaction_id = "TX_ID"
event_time = "TX_DATETIME"
card_id = "CUSTOMER_ID"
merchant_id = "TERMINAL_ID"
amount = "TX_AMOUNT"
label = "TX_FRAUD"

[source.numeric_columns]
distance_km = "DIST"

[source.categorical_columns]
channel = "CHAN"
"""

HEADER = "TX_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD,DIST,CHAN\n"


def _csv(path: Path, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "\n".join(rows) + "\n")
    return path


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def _ingest(cfg: Config):  # type: ignore[no-untyped-def]
    with warehouse(cfg.warehouse_path, extra_columns=cfg.extra_columns()) as con:
        return ingest(con, cfg)


def test_a_nan_amount_in_a_parquet_file_is_quarantined(
    tmp_path: Path, write_config: Callable[..., Config]
) -> None:
    # Parquet writers keep NaN out of a column's min/max statistics; DuckDB then took
    # `isnan(amount)` for false on every row (found on a simulated world with random ids)
    cfg = write_config()
    folder = tmp_path / "landing" / "transactions"
    folder.mkdir(parents=True)
    (tmp_path / "landing" / "labels").mkdir()
    pl.DataFrame(
        {
            "transaction_id": [f"t{i}" for i in range(5)],
            "event_time": [datetime(2026, 3, 1, 10, i) for i in range(5)],
            "card_id": ["c1", "c2", "c3", "c4", "c5"],
            "merchant_id": ["m1"] * 5,
            "amount": [10.0, float("nan"), 12.5, 7.0, 3.0],
            "distance_km": [1.0] * 5,
            "channel": ["pos"] * 5,
        }
    ).write_parquet(folder / "day.parquet")
    result = _ingest(cfg)
    assert result.rows_loaded == 4
    assert result.quarantined_by_reason == {"non_finite_amount": 1}
    with warehouse(cfg.warehouse_path) as con:
        assert _rows(con, "SELECT transaction_id FROM transactions ORDER BY 1") == [
            ("t0",),
            ("t2",),
            ("t3",),
            ("t4",),
        ]


def test_renamed_columns_are_mapped_and_coerced(
    tmp_path: Path, write_config: Callable[..., Config]
) -> None:
    cfg = write_config(RENAMED)
    _csv(
        tmp_path / "landing" / "a.csv",
        [
            "t1,2026-03-01 10:00:00,c1,m1,12.50,0,3.5,pos",
            "t2,2026-03-01T11:30:00Z,c2,m2, 7 ,1,,online",
            "t3,2026-03-01 12:00:00+02:00,c1,m3,100,false,1e3,atm",
        ],
    )
    result = _ingest(cfg)
    assert result.rows_loaded == 3 and result.rows_quarantined == 0
    with warehouse(cfg.warehouse_path) as con:
        rows = _rows(
            con,
            "SELECT transaction_id, event_time, card_id, merchant_id, amount, distance_km, channel "
            "FROM transactions ORDER BY transaction_id",
        )
        assert rows == [
            ("t1", datetime(2026, 3, 1, 10), "c1", "m1", 12.5, 3.5, "pos"),
            ("t2", datetime(2026, 3, 1, 11, 30), "c2", "m2", 7.0, None, "online"),
            ("t3", datetime(2026, 3, 1, 10), "c1", "m3", 100.0, 1000.0, "atm"),
        ]
        # inline labels land in `labels`, reported label_delay_days after the event
        labels = _rows(con, "SELECT transaction_id, is_fraud, reported_at FROM labels ORDER BY 1")
        assert labels == [
            ("t1", False, datetime(2026, 3, 8, 10)),
            ("t2", True, datetime(2026, 3, 8, 11, 30)),
            ("t3", False, datetime(2026, 3, 8, 10)),
        ]


def test_every_quarantine_reason_with_file_row_raw_values(
    tmp_path: Path, write_config: Callable[..., Config]
) -> None:
    cfg = write_config(RENAMED)
    _csv(tmp_path / "landing" / "old.csv", ["dup-old,2026-03-01 09:00:00,c9,m9,1,0,,pos"])
    _ingest(cfg)
    f = _csv(
        tmp_path / "landing" / "b.csv",
        [
            "ok1,2026-03-02 10:00:00,c1,m1,10,0,1,pos",  # row 1: good
            ",2026-03-02 10:00:00,c1,m1,10,0,1,pos",  # row 2: missing id
            "x3,yesterday,c1,m1,10,0,1,pos",  # row 3: bad timestamp
            "x4,2026-03-02 10:00:00,c1,m1,12;50,0,1,pos",  # row 4: bad amount
            "x5,2026-03-02 10:00:00,c1,m1,-3,0,1,pos",  # row 5: negative
            "x6,2026-03-02 10:00:00,c1,m1,inf,0,1,pos",  # row 6: not finite
            "x7,2099-01-01 00:00:00,c1,m1,10,0,1,pos",  # row 7: future
            "ok1,2026-03-02 11:00:00,c1,m1,10,0,1,pos",  # row 8: duplicate in file
            "dup-old,2026-03-02 10:00:00,c1,m1,10,0,1,pos",  # row 9: already in warehouse
            "x10,2026-03-02 10:00:00,,m1,10,0,1,pos",  # row 10: missing card
            "x11,2026-03-02 10:00:00,c1,m1,10,maybe,1,pos",  # row 11: bad label
            "x12,2026-03-02 10:00:00,c1,m1,10,0,far,pos",  # row 12: bad extra numeric
        ],
    )
    result = _ingest(cfg)
    assert result.rows_loaded == 1
    assert result.quarantined_by_reason == {
        "missing_field": 2,
        "bad_timestamp": 1,
        "bad_amount": 1,
        "negative_amount": 1,
        "non_finite_amount": 1,
        "future_timestamp": 1,
        "duplicate_in_file": 1,
        "duplicate_in_warehouse": 1,
        "bad_label": 1,
        "bad_value": 1,
    }
    with warehouse(cfg.warehouse_path) as con:
        q = _rows(
            con,
            "SELECT source_file, source_row, reason, field, raw FROM quarantine "
            "WHERE source_file LIKE '%b.csv' ORDER BY source_row",
        )
    assert [(r[1], r[2], r[3]) for r in q] == [
        (2, "missing_field", "transaction_id"),
        (3, "bad_timestamp", "event_time"),
        (4, "bad_amount", "amount"),
        (5, "negative_amount", "amount"),
        (6, "non_finite_amount", "amount"),
        (7, "future_timestamp", "event_time"),
        (8, "duplicate_in_file", "transaction_id"),
        (9, "duplicate_in_warehouse", "transaction_id"),
        (10, "missing_field", "card_id"),
        (11, "bad_label", "label"),
        (12, "bad_value", "distance_km"),
    ]
    assert all(r[0] == "landing/b.csv" for r in q)
    assert json.loads(q[1][4])["TX_DATETIME"] == "yesterday"  # the raw value is kept
    assert json.loads(q[2][4])["TX_AMOUNT"] == "12;50"
    assert f.exists()


def test_running_twice_changes_nothing(tmp_path: Path, write_config: Callable[..., Config]) -> None:
    cfg = write_config(RENAMED)
    _csv(tmp_path / "landing" / "a.csv", ["t1,2026-03-01 10:00:00,c1,m1,1,0,1,pos"])
    first = _ingest(cfg)
    second = _ingest(cfg)
    assert first.files_ingested == 1 and second.files_ingested == 0
    assert second.files_skipped == 1 and second.problems == []
    with warehouse(cfg.warehouse_path) as con:
        assert _rows(
            con, "SELECT path, feed, rows_read, rows_loaded, status FROM ingested_files"
        ) == [("landing/a.csv", "transactions", 1, 1, "ingested")]


def test_many_files_keep_their_own_ledger_rows_and_cross_file_duplicates_are_caught(
    tmp_path: Path, write_config: Callable[..., Config]
) -> None:
    # clean files are checked and inserted together; each still has its own rows and ledger
    cfg = write_config(RENAMED)
    for day in (1, 2, 3):
        _csv(
            tmp_path / "landing" / f"d{day}.csv",
            [f"t{day}-{i},2026-03-0{day} 10:0{i}:00,c{i},m1,{i + 1},0,1,pos" for i in range(3)],
        )
    first = _ingest(cfg)
    assert (first.files_ingested, first.rows_loaded, first.rows_quarantined) == (3, 9, 0)
    # two new files sharing an id: the second file's copy is the duplicate
    _csv(tmp_path / "landing" / "d4.csv", ["t4-0,2026-03-04 10:00:00,c1,m1,5,0,1,pos"])
    _csv(
        tmp_path / "landing" / "d5.csv",
        ["t5-0,2026-03-05 10:00:00,c1,m1,6,0,1,pos", "t4-0,2026-03-05 11:00:00,c2,m1,7,0,1,pos"],
    )
    second = _ingest(cfg)
    assert (second.files_ingested, second.rows_loaded, second.rows_quarantined) == (2, 2, 1)
    with warehouse(cfg.warehouse_path) as con:
        assert _rows(
            con,
            "SELECT path, rows_read, rows_loaded, rows_quarantined FROM ingested_files ORDER BY 1",
        ) == [
            ("landing/d1.csv", 3, 3, 0),
            ("landing/d2.csv", 3, 3, 0),
            ("landing/d3.csv", 3, 3, 0),
            ("landing/d4.csv", 1, 1, 0),
            ("landing/d5.csv", 2, 1, 1),
        ]
        assert _rows(
            con, "SELECT source_file, source_row FROM transactions WHERE transaction_id = 't2-1'"
        ) == [("landing/d2.csv", 2)]
        assert _rows(con, "SELECT amount FROM transactions WHERE transaction_id = 't4-0'") == [
            (5.0,)
        ]
        assert _rows(con, "SELECT source_file, source_row, reason FROM quarantine") == [
            ("landing/d5.csv", 2, "duplicate_in_warehouse")
        ]
        assert _rows(con, "SELECT count(*) FROM labels") == [(11,)]


def test_file_missing_a_mapped_column_is_set_aside_and_the_others_go_on(
    tmp_path: Path, write_config: Callable[..., Config]
) -> None:
    cfg = write_config(RENAMED)
    _csv(tmp_path / "landing" / "a.csv", ["t1,2026-03-01 10:00:00,c1,m1,1,0,1,pos"])
    bad = tmp_path / "landing" / "b.csv"
    bad.write_text("TX_ID,TX_DATETIME,CUSTOMER_ID,TX_AMOUNT\nt2,2026-03-01,c2,3\n")
    _csv(tmp_path / "landing" / "c.csv", ["t3,2026-03-01 11:00:00,c1,m1,2,0,1,pos"])
    result = _ingest(cfg)
    [aside] = result.set_aside
    assert aside.path == "landing/b.csv"
    assert aside.note and "'TERMINAL_ID'" in aside.note and "merchant_id" in aside.note
    assert result.problems == [f"landing/b.csv set aside, nothing of it loaded: {aside.note}"]
    with warehouse(cfg.warehouse_path) as con:
        assert _rows(con, "SELECT transaction_id FROM transactions ORDER BY 1") == [
            ("t1",),
            ("t3",),
        ]
        assert _rows(
            con, "SELECT path, status, rows_loaded, note FROM ingested_files ORDER BY 1"
        ) == [
            ("landing/a.csv", "ingested", 1, None),
            ("landing/b.csv", "set_aside", 0, aside.note),
            ("landing/c.csv", "ingested", 1, None),
        ]
        assert _rows(con, "SELECT count(*) FROM quarantine") == [(0,)]
    # unchanged, it stays aside quietly; fixed, it is read
    again = _ingest(cfg)
    assert [f.path for f in again.still_set_aside] == ["landing/b.csv"] and not again.problems
    _csv(bad, ["t2,2026-03-01 12:00:00,c2,m2,3,0,1,pos"])
    fixed = _ingest(cfg)
    assert fixed.files_ingested == 1 and fixed.rows_loaded == 1 and not fixed.problems
    with warehouse(cfg.warehouse_path) as con:
        assert _rows(con, "SELECT status FROM ingested_files WHERE path = 'landing/b.csv'") == [
            ("ingested",)
        ]


def test_corrupt_parquet_is_set_aside_naming_the_file(
    tmp_path: Path, write_config: Callable[..., Config]
) -> None:
    cfg = write_config()
    path = tmp_path / "landing" / "transactions" / "2026-03-01.parquet"
    path.parent.mkdir(parents=True)
    (tmp_path / "landing" / "labels").mkdir()
    path.write_bytes(b"PAR1 this is not parquet")
    [aside] = _ingest(cfg).set_aside
    assert aside.path == "landing/transactions/2026-03-01.parquet"
    assert aside.note and aside.note.startswith("cannot be read")
    with warehouse(cfg.warehouse_path) as con:
        assert _rows(con, "SELECT count(*) FROM transactions") == [(0,)]


def test_parquet_and_jsonl_and_labels_feed(
    tmp_path: Path, write_config: Callable[..., Config]
) -> None:
    cfg = write_config(
        extra="",
        text="""
data_dir = "var"
[source]
transactions = "landing/tx/*"
labels = "landing/cb/*.jsonl"
[source.numeric_columns]
distance_km = "distance_km"
""",
    )
    (tmp_path / "landing" / "tx").mkdir(parents=True)
    (tmp_path / "landing" / "cb").mkdir(parents=True)
    pl.DataFrame(
        {
            "transaction_id": ["p1", "p2"],
            "event_time": [datetime(2026, 3, 1, 8), datetime(2026, 3, 1, 9)],
            "card_id": ["c1", "c2"],
            "merchant_id": ["m1", "m2"],
            "amount": [5.0, float("nan")],
            "distance_km": [1.0, None],
        }
    ).write_parquet(tmp_path / "landing" / "tx" / "a.parquet")
    (tmp_path / "landing" / "tx" / "b.jsonl").write_text(
        '{"transaction_id": "j1", "event_time": "2026-03-01 10:00:00", "card_id": "c1", '
        '"merchant_id": "m1", "amount": 3, "distance_km": 2.5}\n'
    )
    (tmp_path / "landing" / "cb" / "c.jsonl").write_text(
        '{"transaction_id": "p1", "is_fraud": true, "reported_at": "2026-03-03 00:00:00"}\n'
        '{"transaction_id": "p1", "is_fraud": true, "reported_at": "2026-03-04 00:00:00"}\n'
        '{"transaction_id": "j1", "is_fraud": "perhaps", "reported_at": "2026-03-03 00:00:00"}\n'
    )
    result = _ingest(cfg)
    assert result.rows_loaded == 2 and result.labels_loaded == 1
    assert result.quarantined_by_reason == {
        "non_finite_amount": 1,
        "duplicate_label": 1,
        "bad_label": 1,
    }


def test_parquet_files_read_together_keep_their_file_and_row(
    tmp_path: Path, write_config: Callable[..., Config]
) -> None:
    # clean Parquet files of one schema are read by one scan: each row keeps its file and row
    cfg = write_config(
        extra="",
        text='data_dir = "var"\n[source]\ntransactions = "landing/*.parquet"\n',
    )
    (tmp_path / "landing").mkdir()

    def write(name: str, ids: list[str], hour: int) -> None:
        pl.DataFrame(
            {
                "transaction_id": ids,
                "event_time": [datetime(2026, 3, 1, hour, i) for i in range(len(ids))],
                "card_id": ["c1"] * len(ids),
                "merchant_id": ["m1"] * len(ids),
                "amount": [float(i + 1) for i in range(len(ids))],
            }
        ).write_parquet(tmp_path / "landing" / name)

    write("a.parquet", ["a1", "a2", "a3"], 8)
    write("b.parquet", ["b1", "b2"], 9)
    assert _ingest(cfg).rows_loaded == 5
    write("c.parquet", ["c1", "a2"], 10)  # a2 is already in the warehouse
    write("d.parquet", ["d1"], 11)
    second = _ingest(cfg)
    assert (second.rows_loaded, second.quarantined_by_reason) == (2, {"duplicate_in_warehouse": 1})
    with warehouse(cfg.warehouse_path) as con:
        assert _rows(
            con, "SELECT transaction_id, source_file, source_row FROM transactions ORDER BY 1"
        ) == [
            ("a1", "landing/a.parquet", 1),
            ("a2", "landing/a.parquet", 2),
            ("a3", "landing/a.parquet", 3),
            ("b1", "landing/b.parquet", 1),
            ("b2", "landing/b.parquet", 2),
            ("c1", "landing/c.parquet", 1),
            ("d1", "landing/d.parquet", 1),
        ]
        assert _rows(con, "SELECT source_file, source_row, reason FROM quarantine") == [
            ("landing/c.parquet", 2, "duplicate_in_warehouse")
        ]
        assert _rows(con, "SELECT path, rows_read, rows_loaded FROM ingested_files ORDER BY 1") == [
            ("landing/a.parquet", 3, 3),
            ("landing/b.parquet", 2, 2),
            ("landing/c.parquet", 2, 1),
            ("landing/d.parquet", 1, 1),
        ]


def test_ingest_runs_under_its_own_memory_cap_and_gives_it_back(
    tmp_path: Path, write_config: Callable[..., Config]
) -> None:
    cfg = write_config(
        RENAMED + '[warehouse]\nmemory_limit = "1GB"\ningest_memory_limit = "64MB"\n'
    )
    assert cfg.settings.warehouse.ingest_limit() == "64MB"
    assert (
        write_config(
            RENAMED + '[warehouse]\nmemory_limit = "50MB"\n'
        ).settings.warehouse.ingest_limit()
        == "50MB"
    )
    _csv(tmp_path / "landing" / "a.csv", ["t1,2026-03-01 10:00:00,c1,m1,1,0,1,pos"])
    seen: list[str] = []
    with configured_warehouse(cfg) as con:
        seen.append(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
        assert ingest(con, cfg).rows_loaded == 1
        seen.append(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
    assert seen == ["953.6 MiB", "953.6 MiB"]  # 1GB before and after; 64MB only within


def test_locked_warehouse_fails_fast_and_changes_nothing(
    tmp_path: Path, write_config: Callable[..., Config]
) -> None:
    cfg = write_config(RENAMED + "[warehouse]\nlock_wait_seconds = 1\n")
    _csv(tmp_path / "landing" / "a.csv", ["t1,2026-03-01 10:00:00,c1,m1,1,0,1,pos"])
    open_warehouse(cfg.warehouse_path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import duckdb, sys, time
                con = duckdb.connect({str(cfg.warehouse_path)!r})
                print("locked", flush=True)
                sys.stdin.read()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(WarehouseLocked, match="held by another process"):
            _ingest(cfg)
        started = time.monotonic()
        result = CliRunner().invoke(cli, ["ingest", "--config", str(cfg.path)])
        assert result.exit_code == 1
        assert "held by another process" in result.output and "waited for 1 s" in result.output
        assert time.monotonic() - started < 10
    finally:
        holder.communicate("", timeout=30)
    with warehouse(cfg.warehouse_path) as con:
        assert _rows(con, "SELECT count(*) FROM transactions") == [(0,)]


def test_cli_json(tmp_path: Path, write_config: Callable[..., Config]) -> None:
    cfg = write_config(RENAMED)
    _csv(tmp_path / "landing" / "a.csv", ["t1,2026-03-01 10:00:00,c1,m1,-1,0,1,pos"])
    result = CliRunner().invoke(cli, ["ingest", "--config", str(cfg.path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["rows_quarantined"] == 1
    assert data["quarantined_by_reason"] == {"negative_amount": 1}
    with warehouse(cfg.warehouse_path) as con:
        assert _rows(con, "SELECT job, status FROM runs") == [("ingest", "ok")]


def test_sql_looking_column_names_are_quoted_not_executed(
    tmp_path: Path, write_config: Callable[..., Config]
) -> None:
    evil = 'amt"); DROP TABLE transactions; --'
    cfg = write_config(
        text=f"""
data_dir = "var"
[source]
transactions = "landing/*.csv"
[source.columns]
amount = '{evil}'
"""
    )
    path = tmp_path / "landing" / "a.csv"
    path.parent.mkdir(parents=True)
    path.write_text(
        f'transaction_id,event_time,card_id,merchant_id,"{evil.replace(chr(34), chr(34) * 2)}"\n'
        "t1,2026-03-01 10:00:00,c1,m1,4\n"
    )
    result = _ingest(cfg)
    assert result.rows_loaded == 1
    with warehouse(cfg.warehouse_path) as con:
        assert _rows(con, "SELECT amount FROM transactions") == [(4.0,)]
