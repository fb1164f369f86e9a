"""Landing files that change or break, ids that keep their identity (issue 14), on real
files, the real CLI and a real DuckDB warehouse."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
from click.testing import CliRunner, Result

from jobs.cli import cli
from jobs.config import Config

PLAIN = """
data_dir = "var"
[source]
transactions = "landing/tx/*"
labels = "landing/labels/*"
"""


def fw(cfg: Config, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--config", str(cfg.path)])


def rows(cfg: Config, sql: str) -> list[tuple]:
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
        return con.execute(sql).fetchall()


def folders(root: Path) -> tuple[Path, Path]:
    (root / "landing" / "tx").mkdir(parents=True)
    (root / "landing" / "labels").mkdir(parents=True)
    return root / "landing" / "tx", root / "landing" / "labels"


HEADER = "transaction_id,event_time,card_id,merchant_id,amount\n"


def test_a_file_cut_mid_line_then_completed_is_never_silently_ignored(
    tmp_path: Path, write_config: Callable[..., Config]
) -> None:
    cfg = write_config(PLAIN)
    tx, _ = folders(tmp_path)
    full = (
        HEADER + "t1,2026-03-01 10:00:00,c1,m1,10.00\n"
        "t2,2026-03-01 10:01:00,c2,m2,125.50\n"
        "t3,2026-03-01 10:02:00,c3,m3,7.00\n"
    )
    cut = full[: full.index("125.50") + 2]  # an upstream still writing: "...,12"
    (tx / "a.csv").write_text(cut)
    first = fw(cfg, "ingest")
    assert first.exit_code == 0, first.output
    assert rows(cfg, "SELECT transaction_id, amount FROM transactions ORDER BY 1") == [
        ("t1", 10.0),
        ("t2", 12.0),
    ]
    old_sha = rows(cfg, "SELECT sha256 FROM ingested_files")[0][0]
    with duckdb.connect(str(cfg.warehouse_path)) as con:  # t1 and t2 were scored meanwhile
        con.execute(
            "INSERT INTO scores (transaction_id, model_name, model_version, role, score, "
            "scored_at, run_id) VALUES ('t1', 'fraud', 1, 'champion', 0.1, now()::TIMESTAMP, 'r'),"
            " ('t2', 'fraud', 1, 'champion', 0.2, now()::TIMESTAMP, 'r')"
        )

    (tx / "a.csv").write_text(full)  # the complete file
    second = fw(cfg, "ingest")
    assert second.exit_code == 1, second.output
    assert "needs attention: landing/tx/a.csv changed after it was ingested" in second.output
    assert "1 row(s) loaded, 1 unchanged, 1 changed" in second.output
    # the new row is loaded, the changed one quarantined with the stored value, nothing lost
    assert rows(cfg, "SELECT transaction_id, amount FROM transactions ORDER BY 1") == [
        ("t1", 10.0),
        ("t2", 12.0),
        ("t3", 7.0),
    ]
    [(row, reason, field, detail, raw)] = rows(
        cfg, "SELECT source_row, reason, field, detail, raw FROM quarantine"
    )
    assert (row, reason, field) == (2, "changed_after_ingest", "amount")
    assert "ingested earlier as amount = 12.0" in detail and "--reingest" in detail
    assert json.loads(raw)["amount"] == "125.50"
    [ledger] = rows(
        cfg,
        "SELECT status, previous_sha256, sha256 <> previous_sha256, rows_read, rows_loaded, "
        "note FROM ingested_files",
    )
    assert ledger[:5] == ("changed", old_sha, True, 3, 3)
    assert "1 changed" in ledger[5]
    [(status, error)] = rows(cfg, "SELECT status, error FROM runs ORDER BY started_at DESC LIMIT 1")
    assert status == "needs_attention" and "landing/tx/a.csv changed" in error

    third = fw(cfg, "ingest")  # the change was reported once; the file is now known
    assert third.exit_code == 0 and "0 changed" in third.output
    assert rows(cfg, "SELECT count(*) FROM quarantine") == [(1,)]

    # --reingest: the file's rows become its current content, in one transaction
    again = fw(cfg, "ingest", "--reingest", str(tx / "a.csv"))
    assert again.exit_code == 0, again.output
    assert "replaced by --reingest" in again.output
    assert rows(cfg, "SELECT transaction_id, amount FROM transactions ORDER BY 1") == [
        ("t1", 10.0),
        ("t2", 125.5),
        ("t3", 7.0),
    ]
    assert rows(cfg, "SELECT count(*) FROM quarantine") == [(0,)]
    # the changed row's old score is gone (the champion scores the new value), t1's stays
    assert rows(cfg, "SELECT transaction_id FROM scores") == [("t1",)]
    assert rows(cfg, "SELECT status, rows_loaded, rows_quarantined FROM ingested_files") == [
        ("reingested", 3, 0)
    ]


def test_a_changed_labels_file_loads_its_new_labels(
    tmp_path: Path, write_config: Callable[..., Config]
) -> None:
    cfg = write_config(PLAIN)
    tx, labels = folders(tmp_path)
    (tx / "a.csv").write_text(HEADER + "t1,2026-03-01 10:00:00,c1,m1,1\nt2,2026-03-01,c2,m2,2\n")
    line = '{{"transaction_id": "{}", "is_fraud": true, "reported_at": "2026-03-09"}}\n'
    (labels / "cb.jsonl").write_text(line.format("t1"))
    assert fw(cfg, "ingest").exit_code == 0
    (labels / "cb.jsonl").write_text(line.format("t1") + line.format("t2"))
    result = fw(cfg, "ingest", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["changed_files"] == ["landing/labels/cb.jsonl"] and data["labels_loaded"] == 1
    assert rows(cfg, "SELECT transaction_id FROM labels ORDER BY 1") == [("t1",), ("t2",)]
    assert rows(cfg, "SELECT count(*) FROM quarantine") == [(0,)]


def test_unreadable_files_are_set_aside_and_the_batch_goes_on(
    tmp_path: Path, write_config: Callable[..., Config]
) -> None:
    cfg = write_config(PLAIN)
    tx, labels = folders(tmp_path)
    (tx / "a-empty.csv").write_bytes(b"")
    (tx / "b-empty.jsonl").write_bytes(b"")
    (tx / "c-empty.parquet").write_bytes(b"")
    (tx / "d-csv-named.parquet").write_text(HEADER + "x1,2026-03-01,c1,m1,1\n")
    good = HEADER + "g1,2026-03-01 09:00:00,c1,m1,5\n"
    (tx / "e-latin1.csv").write_bytes(
        (
            HEADER + "l1,2026-03-01 09:00:00,c1,Café Zürich,5\nl2,2026-03-01 09:01:00,c2,m2,6\n"
        ).encode("latin-1")
    )
    (tx / "f-extra-field.csv").write_text(
        HEADER + "r1,2026-03-01 09:00:00,c1,m1,5\n"
        "r2,2026-03-01 09:01:00,c1,Shop, Inc,6\n"  # an unquoted comma: one field too many
        "r3,2026-03-01 09:02:00,c3,m3,7\n"
    )
    (tx / "g-truncated.jsonl").write_text(
        '{"transaction_id": "j1", "event_time": "2026-03-01 09:00:00", "card_id": "c1", '
        '"merchant_id": "m1", "amount": 5}\n'
        '{"transaction_id": "j2", "event_time": "2026-03-01 09:0\n'
        '{"transaction_id": "j3", "event_time": "2026-03-01 09:02:00", "card_id": "c1", '
        '"merchant_id": "m1", "amount": 7}\n'
    )
    (tx / "z-good.csv").write_text(good)
    (labels / "cb.csv").write_text("transaction_id,is_fraud,reported_at\ng1,1,2026-03-09\n")
    result = fw(cfg, "ingest")
    assert result.exit_code == 1, result.output
    # every readable row arrived, the labels feed too
    assert rows(cfg, "SELECT transaction_id FROM transactions ORDER BY 1") == [
        ("g1",),
        ("j1",),
        ("j3",),
        ("l2",),
        ("r1",),
        ("r3",),
    ]
    assert rows(cfg, "SELECT transaction_id FROM labels") == [("g1",)]
    # the bad rows are quarantined as rows, with their file, row number and why
    assert rows(
        cfg, "SELECT source_file, source_row, reason FROM quarantine ORDER BY source_file"
    ) == [
        ("landing/tx/e-latin1.csv", 1, "malformed_row"),
        ("landing/tx/f-extra-field.csv", 2, "malformed_row"),
        ("landing/tx/g-truncated.jsonl", 2, "malformed_row"),
    ]
    assert rows(  # rows after a rejected one keep their own row numbers
        cfg,
        "SELECT transaction_id, source_row FROM transactions WHERE source_file LIKE '%f-ex%' "
        "ORDER BY 1",
    ) == [("r1", 1), ("r3", 3)]
    details = dict(rows(cfg, "SELECT source_file, detail FROM quarantine"))
    assert "source.csv_encoding" in details["landing/tx/e-latin1.csv"]
    assert details["landing/tx/f-extra-field.csv"] == "more fields than the header"
    assert "not valid JSON" in details["landing/tx/g-truncated.jsonl"]
    raw = dict(rows(cfg, "SELECT source_file, raw FROM quarantine"))
    assert json.loads(raw["landing/tx/f-extra-field.csv"]) == {
        "line": "r2,2026-03-01 09:01:00,c1,Shop, Inc,6"
    }
    # the unreadable files are set aside in the ledger, with why, and named in the output
    aside = dict(rows(cfg, "SELECT path, note FROM ingested_files WHERE status = 'set_aside'"))
    assert sorted(aside) == [
        "landing/tx/a-empty.csv",
        "landing/tx/b-empty.jsonl",
        "landing/tx/c-empty.parquet",
        "landing/tx/d-csv-named.parquet",
    ]
    assert aside["landing/tx/a-empty.csv"].startswith("is empty (0 bytes)")
    assert aside["landing/tx/d-csv-named.parquet"].startswith("cannot be read")
    for path in aside:
        assert f"needs attention: {path} set aside" in result.output
    # the next run is quiet about them, and says they are still aside
    again = fw(cfg, "ingest")
    assert again.exit_code == 0 and "4 file(s) still set aside" in again.output


def test_latin1_csv_reads_whole_with_its_encoding(
    tmp_path: Path, write_config: Callable[..., Config]
) -> None:
    cfg = write_config(PLAIN + 'csv_encoding = "latin-1"\n')
    tx, _ = folders(tmp_path)
    (tx / "a.csv").write_bytes((HEADER + "l1,2026-03-01 09:00:00,c1,Café,5\n").encode("latin-1"))
    assert fw(cfg, "ingest").exit_code == 0
    assert rows(cfg, "SELECT merchant_id FROM transactions") == [("Café",)]


def test_ids_keep_their_identity_whatever_the_format_and_json_type(
    tmp_path: Path, write_config: Callable[..., Config]
) -> None:
    cfg = write_config(PLAIN)
    tx, _ = folders(tmp_path)
    (tx / "a.jsonl").write_text(
        '{"transaction_id": 101, "event_time": "2026-03-01 09:00:00", "card_id": 4111, '
        '"merchant_id": "m1", "amount": 12.5}\n'
        '{"transaction_id": "102", "event_time": "2026-03-01 09:01:00", "card_id": "4111", '
        '"merchant_id": 7, "amount": "3"}\n'
        '{"transaction_id": " 103 ", "event_time": "2026-03-01 09:02:00", "card_id": " 4111", '
        '"merchant_id": "7", "amount": 1}\n'
    )
    pl.DataFrame(
        {
            "transaction_id": ["w1", "w1 ", " w1", "101"],
            "event_time": [datetime(2026, 3, 1, 10, i) for i in range(4)],
            "card_id": ["4111 ", "c2", "c2", "c3"],
            "merchant_id": ["m1", "m1", "m1", "m1"],
            "amount": [1.0, 2.0, 3.0, 4.0],
        }
    ).write_parquet(tx / "b.parquet")
    assert fw(cfg, "ingest").exit_code == 0
    assert rows(
        cfg, "SELECT transaction_id, card_id, merchant_id FROM transactions ORDER BY 1"
    ) == [
        ("101", "4111", "m1"),
        ("102", "4111", "7"),
        ("103", "4111", "7"),
        ("w1", "4111", "m1"),
    ]
    assert rows(cfg, "SELECT source_file, source_row, reason FROM quarantine ORDER BY 2") == [
        ("landing/tx/b.parquet", 2, "duplicate_in_file"),
        ("landing/tx/b.parquet", 3, "duplicate_in_file"),
        ("landing/tx/b.parquet", 4, "duplicate_in_warehouse"),
    ]


def test_a_glob_whose_folder_does_not_exist_is_a_config_error(
    tmp_path: Path, write_config: Callable[..., Config]
) -> None:
    cfg = write_config(PLAIN)
    (tmp_path / "landing" / "tx").mkdir(parents=True)  # the labels folder is missing
    result = fw(cfg, "ingest")
    assert result.exit_code == 2
    assert "source.labels" in result.output and "landing/labels" in result.output
    assert "does not exist" in result.output
    run = fw(cfg, "run")
    assert run.exit_code == 2 and "source.labels" in run.output


def test_orphan_labels_and_inline_labels_are_counted(
    tmp_path: Path, write_config: Callable[..., Config]
) -> None:
    cfg = write_config(
        PLAIN.replace('labels = "landing/labels/*"', 'labels = "landing/labels/*"\n')
        + '[source.columns]\nlabel = "is_fraud"\n'
    )
    tx, labels = folders(tmp_path)
    (tx / "a.csv").write_text(
        HEADER.strip() + ",is_fraud\n"
        "t1,2026-03-01 10:00:00,c1,m1,1,0\nt2,2026-03-01 10:01:00,c2,m2,2,1\n"
        "t3,2026-03-01 10:02:00,c3,m3,3,\n"
    )
    (labels / "cb.csv").write_text(
        "transaction_id,is_fraud,reported_at\nt3,1,2026-03-09\nnope-1,1,2026-03-09\n"
    )
    result = fw(cfg, "ingest")
    assert result.exit_code == 0, result.output
    assert "3 transactions and 4 labels loaded" in result.output  # 2 inline, 2 from the feed
    assert "1 label(s) name transactions the warehouse does not have (e.g. 'nope-1')" in (
        result.output
    )
    data = json.loads(fw(cfg, "ingest", "--json").stdout)
    assert data["labels_loaded"] == 0  # nothing new the second time
    assert rows(cfg, "SELECT count(*) FROM labels") == [(4,)]  # the orphan is kept


def test_a_ready_marker_holds_files_until_their_folder_is_complete(
    tmp_path: Path, write_config: Callable[..., Config]
) -> None:
    cfg = write_config(PLAIN + 'ready_marker = "_SUCCESS"\n')
    tx, _ = folders(tmp_path)
    (tx / "a.csv").write_text(HEADER + "t1,2026-03-01 10:00:00,c1,m1,1\n")
    (tx / ".a.csv.tmp").write_text("half written")
    waiting = json.loads(fw(cfg, "ingest", "--json").stdout)
    assert waiting["files_waiting"] and waiting["rows_loaded"] == 0
    (tx / "_SUCCESS").write_text("")
    done = json.loads(fw(cfg, "ingest", "--json").stdout)
    assert done["rows_loaded"] == 1 and not done["files_set_aside"]


def test_an_ingested_file_replaced_by_an_unreadable_version_keeps_its_rows_and_says_so(
    tmp_path: Path, write_config: Callable[..., Config]
) -> None:
    cfg = write_config(PLAIN)
    tx, _ = folders(tmp_path)
    (tx / "a.csv").write_text(HEADER + "t1,2026-03-01 10:00:00,c1,m1,1\n")
    assert fw(cfg, "ingest").exit_code == 0
    (tx / "a.csv").write_bytes(b"")  # truncated by an upstream that rewrites in place
    for _ in range(2):  # said on every run until the file is right again
        result = fw(cfg, "ingest")
        assert result.exit_code == 1
        assert "a new version" in result.output and "its earlier rows stay" in result.output
    assert rows(cfg, "SELECT transaction_id FROM transactions") == [("t1",)]
    [(status, note)] = rows(cfg, "SELECT status, note FROM ingested_files")
    assert status == "ingested" and "cannot be read: is empty (0 bytes)" in note
    (tx / "a.csv").write_text(HEADER + "t1,2026-03-01 10:00:00,c1,m1,1\nt2,2026-03-01,c2,m2,2\n")
    assert fw(cfg, "ingest").exit_code == 1  # a change after ingestion: reported once
    assert rows(cfg, "SELECT transaction_id FROM transactions ORDER BY 1") == [("t1",), ("t2",)]
    assert fw(cfg, "ingest").exit_code == 0


def test_reingest_replaces_a_labels_files_labels(
    tmp_path: Path, write_config: Callable[..., Config]
) -> None:
    cfg = write_config(PLAIN)
    tx, labels = folders(tmp_path)
    (tx / "a.csv").write_text(HEADER + "t1,2026-03-01 10:00:00,c1,m1,1\n")
    (labels / "cb.csv").write_text("transaction_id,is_fraud,reported_at\nt1,1,2026-03-09\n")
    assert fw(cfg, "ingest").exit_code == 0
    (labels / "cb.csv").write_text("transaction_id,is_fraud,reported_at\nt1,0,2026-03-10\n")
    assert fw(cfg, "ingest").exit_code == 1  # changed: the new label is loaded beside the old
    assert rows(cfg, "SELECT is_fraud FROM labels ORDER BY reported_at") == [(True,), (False,)]
    result = fw(cfg, "ingest", "--reingest", str(labels / "cb.csv"))
    assert result.exit_code == 0, result.output
    assert rows(cfg, "SELECT is_fraud, reported_at FROM labels") == [(False, datetime(2026, 3, 10))]
    assert rows(cfg, "SELECT status FROM ingested_files WHERE feed = 'labels'") == [("reingested",)]
    missing = fw(cfg, "ingest", "--reingest", str(tmp_path / "landing" / "nope.csv"))
    assert missing.exit_code == 2 and "no such file" in missing.output
