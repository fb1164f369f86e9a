"""Analysts' dispositions (issue 18): the feed, `alerts review`, labels with their own source,
chargebacks winning, and alerts carrying their review status (list, export).

Real files, a real warehouse and the simulated world's real champion; assertions on what
users see: exit codes, command output, rows in the warehouse, exported files."""

from __future__ import annotations

import csv
import io
import json
import stat
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
from click.testing import CliRunner

from jobs.batch import run_batch
from jobs.cli import cli
from jobs.config import Config, load_config
from tests.conftest import World


def _config(world: World, pattern: str = "landing/dispositions/*.csv", extra: str = "") -> Config:
    path = world.root / "config.toml"
    text = path.read_text().replace(
        "label_delay_days = 7\n", f'label_delay_days = 7\ndispositions = "{pattern}"\n', 1
    )
    path.write_text(text + extra)
    (world.root / "landing" / "dispositions").mkdir(exist_ok=True)
    return load_config(path)


def _cli(cfg: Config, *args: str, actor: str = "tests") -> tuple[int, str]:
    """Exit code and output (with --json: stdout alone, the result object)."""
    result = CliRunner().invoke(
        cli, ["--config", str(cfg.path), *args], env={"FRAUDWATCH_ACTOR": actor}
    )
    return result.exit_code, result.stdout if "--json" in args else result.output


def _query(cfg: Config, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(cfg.warehouse_path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _alerted(cfg: Config, n: int) -> list[tuple[str, datetime]]:
    """The ``n`` highest-scored alerted transactions and their event times."""
    return [
        (str(t), e)
        for t, e in _query(
            cfg,
            "SELECT transaction_id, any_value(event_time) FROM alerts GROUP BY 1 "
            "ORDER BY max(score) DESC, 1 LIMIT ?",
            [n],
        )
    ]


def _labels(cfg: Config, tid: str) -> list[tuple]:
    return _query(
        cfg,
        "SELECT source, is_fraud, reported_at FROM labels WHERE transaction_id = ? ORDER BY 3",
        [tid],
    )


def _latest_label(cfg: Config, tid: str) -> bool | None:
    """What training, the gate and the performance report take as the label."""
    rows = _query(
        cfg, "SELECT arg_max(is_fraud, reported_at) FROM labels WHERE transaction_id = ?", [tid]
    )
    return rows[0][0]


def _chargebacks(world: World, name: str, rows: list[tuple[str, bool, datetime]]) -> None:
    frame = pl.DataFrame(
        rows,
        schema={"transaction_id": pl.Utf8, "is_fraud": pl.Boolean, "reported_at": pl.Datetime},
        orient="row",
    )
    frame.write_parquet(world.root / "landing" / "labels" / name)


def test_feed_becomes_labels_quarantines_bad_rows_and_reads_each_file_once(world: World) -> None:
    cfg = _config(world)
    run_batch(cfg, reports=False)
    (a, ta), (b, tb), (c, tc) = _alerted(cfg, 3)
    h = timedelta(hours=1)
    lines = [
        "transaction_id,disposition,analyst,reviewed_at,note",
        f"{a},confirmed_fraud,alice,{ta + 2 * h},customer confirmed",
        f"{b}, Legitimate ,bob,{tb + 3 * h},",
        f"{c},unreachable,carol,{tc + h},left a voicemail",
        f"NOPE-1,confirmed_fraud,alice,{ta + 2 * h},",
        f"{a},maybe,alice,{ta + 2 * h},",
        f"{b},legitimate,,{tb + 3 * h},",
        f"{c},legitimate,dave,yesterday,",
        f"{a},confirmed_fraud,alice,{ta + 2 * h},again",
        f"{b},legitimate,bob,{tb - 24 * h},",
    ]
    feed = world.root / "landing" / "dispositions" / "2026-04-06.csv"
    feed.write_text("\n".join(lines) + "\n")

    code, out = _cli(cfg, "ingest", "--json")
    assert code == 0, out
    assert json.loads(out)["quarantined_by_reason"] == {
        "bad_disposition": 1,
        "bad_timestamp": 2,
        "duplicate_disposition": 1,
        "missing_field": 1,
        "unknown_transaction": 1,
    }
    assert _query(
        cfg,
        "SELECT transaction_id, disposition, is_fraud, analyst, note FROM dispositions ORDER BY 4",
    ) == [
        (a, "confirmed_fraud", True, "alice", "customer confirmed"),
        (b, "legitimate", False, "bob", None),
        (c, "unreachable", None, "carol", "left a voicemail"),
    ]
    # decisions that say fraud or legitimate are labels, reported when reviewed
    assert _labels(cfg, a)[-1] == ("disposition", True, ta + 2 * h)
    assert ("disposition", False, tb + 3 * h) in _labels(cfg, b)
    assert all(src != "disposition" for src, _, _ in _labels(cfg, c))
    # the features' known frauds (jobs.keys) know the confirmed fraud from the review on
    assert _query(
        cfg, "SELECT min(reported_at) FROM known_frauds WHERE transaction_id = ?", [a]
    ) == [(min(r for _, fraud, r in _labels(cfg, a) if fraud),)]
    quarantined = _query(
        cfg,
        "SELECT source_row, reason, field, detail FROM quarantine WHERE feed = 'dispositions' "
        "AND source_file = 'landing/dispositions/2026-04-06.csv' ORDER BY 1",
    )
    assert [(r, why, f) for r, why, f, _ in quarantined] == [
        (4, "unknown_transaction", "transaction_id"),
        (5, "bad_disposition", "disposition"),
        (6, "missing_field", "analyst"),
        (7, "bad_timestamp", "reviewed_at"),
        (8, "duplicate_disposition", "transaction_id"),
        (9, "bad_timestamp", "reviewed_at"),
    ]
    assert "'maybe' is none of fraud (confirmed_fraud)" in quarantined[1][3]
    assert "before the transaction" in quarantined[5][3]
    assert _query(
        cfg,
        "SELECT status, rows_read, rows_loaded, rows_quarantined FROM ingested_files "
        "WHERE feed = 'dispositions'",
    ) == [("ingested", 9, 3, 6)]

    # each file once
    code, out = _cli(cfg, "ingest", "--json")
    assert code == 0 and json.loads(out)["files_skipped"] >= 1
    assert _query(cfg, "SELECT count(*) FROM dispositions") == [(3,)]

    # alerts carry their review status
    code, out = _cli(cfg, "alerts", "list", "--limit", "1000")
    assert code == 0
    row_of = {line.split()[1]: line for line in out.splitlines()[1:]}
    assert "confirmed" in row_of[a] and "cleared" in row_of[b] and "unreachable" in row_of[c]
    assert sum("pending review" in line for line in row_of.values()) == len(row_of) - 3
    code, out = _cli(cfg, "alerts", "list", "--review", "confirmed", "--json")
    listed = json.loads(out)
    assert {r["transaction_id"] for r in listed} == {a}
    assert listed[0]["analyst"] == "alice" and listed[0]["review"] == "confirmed"


def test_feed_columns_are_mapped_by_config_in_json_lines_and_parquet(world: World) -> None:
    cfg = _config(
        world,
        "landing/dispositions/*",
        '\n[source.disposition_columns]\ntransaction_id = "txn"\ndisposition = "outcome"\n'
        'analyst = "who"\nreviewed_at = "at"\n\n[dispositions]\nfraud = ["fraud", "confirmed"]\n'
        'legitimate = ["genuine"]\nno_label = ["no_answer"]\n',
    )
    run_batch(cfg, reports=False)
    (a, ta), (b, tb), (c, tc) = _alerted(cfg, 3)
    folder = world.root / "landing" / "dispositions"
    (folder / "a.jsonl").write_text(
        json.dumps(
            {"txn": a, "outcome": "CONFIRMED", "who": "ann", "at": f"{ta + timedelta(hours=1)}"}
        )
        + "\n"
        + json.dumps(
            {"txn": b, "outcome": "no_answer", "who": "ann", "at": f"{tb + timedelta(hours=1)}"}
        )
        + "\n"
    )
    pl.DataFrame(
        {"txn": [c], "outcome": ["genuine"], "who": ["ben"], "at": [tc + timedelta(hours=5)]}
    ).write_parquet(folder / "b.parquet")
    pl.DataFrame({"txn": [c], "result": ["genuine"]}).write_parquet(folder / "c.parquet")

    code, out = _cli(cfg, "ingest", "--json")
    assert code == 1  # a file set aside needs a person
    result = json.loads(out)
    [aside] = result["files_set_aside"]
    assert aside["path"].endswith("c.parquet") and "'outcome'" in aside["why"]
    assert _query(
        cfg, "SELECT transaction_id, disposition, is_fraud, analyst FROM dispositions ORDER BY 1"
    ) == sorted(
        [(a, "confirmed", True, "ann"), (b, "no_answer", None, "ann"), (c, "genuine", False, "ben")]
    )
    assert _labels(cfg, c)[-1] == ("disposition", False, tc + timedelta(hours=5))


def test_review_records_the_actor_and_chargebacks_win(world: World) -> None:
    cfg = _config(world)
    run_batch(cfg, reports=False)
    (a, ta), (b, tb), (c, tc) = _alerted(cfg, 3)
    h = timedelta(hours=1)

    code, out = _cli(
        cfg, "alerts", "review", a, "--fraud", "--note", "card in hand", "--at", f"{ta + h:%Y-%m-%d %H:%M:%S}",
        actor="alice@fraud-desk",
    )  # fmt: skip
    assert code == 0, out
    assert f"{a}: confirmed_fraud by alice@fraud-desk" in out
    assert _query(cfg, "SELECT analyst, note, source_file FROM dispositions") == [
        ("alice@fraud-desk", "card in hand", "fraudwatch alerts review")
    ]
    assert _latest_label(cfg, a) is True

    # a chargeback that disagrees, reported later, wins, and the disagreement is counted
    _chargebacks(world, "late.parquet", [(a, False, ta + 20 * 24 * h)])
    assert _cli(cfg, "ingest")[0] == 0
    assert _latest_label(cfg, a) is False
    from jobs.alert_reviews import overturned
    from jobs.warehouse import open_warehouse

    con = open_warehouse(cfg.warehouse_path, read_only=True)
    try:
        seen = overturned(con)
    finally:
        con.close()
    assert (seen.compared, seen.overturned, seen.confirmed_but_legit) == (1, 1, 1)

    # a chargeback already known when the analyst decides: no label, and the command says so
    _chargebacks(world, "known.parquet", [(b, True, tb + h)])
    assert _cli(cfg, "ingest")[0] == 0
    code, out = _cli(
        cfg, "alerts", "review", b, "--legit", "--at", f"{tb + 5 * h:%Y-%m-%d %H:%M:%S}"
    )
    assert code == 0 and "no label written: a chargeback (fraud) was already known" in out
    assert [s for s, _, _ in _labels(cfg, b)] == ["chargeback"]

    # a chargeback that arrives later but was reported before the review supersedes it
    code, out = _cli(
        cfg, "alerts", "review", c, "--legit", "--at", f"{tc + 10 * h:%Y-%m-%d %H:%M:%S}"
    )
    assert code == 0 and _latest_label(cfg, c) is False
    _chargebacks(world, "earlier.parquet", [(c, True, tc + 2 * h)])
    assert _cli(cfg, "ingest")[0] == 0
    assert _labels(cfg, c) == [("chargeback", True, tc + 2 * h)]
    assert _query(cfg, "SELECT count(*) FROM dispositions WHERE transaction_id = ?", [c]) == [(1,)]

    # mistakes are clear and change nothing
    before = _query(cfg, "SELECT count(*) FROM dispositions")
    code, out = _cli(cfg, "alerts", "review", "NOPE-9", "--fraud")
    assert code == 1 and "no transaction 'NOPE-9'" in out
    code, out = _cli(cfg, "alerts", "review", a)
    assert code == 2 and "exactly one of --fraud, --legit or --disposition" in out
    code, out = _cli(cfg, "alerts", "review", a, "--disposition", "perhaps")
    assert code == 2 and "'perhaps' is none of" in out
    assert _query(cfg, "SELECT count(*) FROM dispositions") == before


def test_export_of_the_days_alerts_for_case_management(world: World) -> None:
    cfg = _config(world)
    run_batch(cfg, reports=False)
    [(day,)] = _query(cfg, "SELECT max(alert_day) FROM alerts")
    expected = _query(
        cfg,
        "SELECT transaction_id, any_value(card_id) FROM alerts WHERE alert_day = ? GROUP BY 1 "
        "ORDER BY max(score) DESC, 1",
        [day],
    )
    first = expected[0][0]
    assert _cli(cfg, "alerts", "review", first, "--fraud")[0] == 0

    code, out = _cli(cfg, "alerts", "export", "--out", "-")
    assert code == 0, out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["transaction_id"], r["card_id"]) for r in rows] == [(t, str(k)) for t, k in expected]
    assert rows[0]["review"] == "confirmed" and rows[0]["analyst"] == "tests"
    assert all(r["review"] == "pending review" for r in rows[1:])
    assert all(r["reasons"] and r["alert_day"] == f"{day}" for r in rows)

    code, out = _cli(cfg, "alerts", "export", "--day", f"{day}", "--format", "jsonl")
    path = cfg.data_dir / "exports" / f"alerts-{day}.jsonl"
    assert code == 0 and f"{len(expected)} alert(s) of {day} written to {path}" in out
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["transaction_id"] for x in lines] == [t for t, _ in expected]
    assert isinstance(lines[0]["reasons"], list) and lines[0]["reasons"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # full card ids: the owner only

    code, out = _cli(cfg, "alerts", "export", "--day", "2020-01-01", "--out", "-")
    assert code == 0 and out.splitlines() == [out.splitlines()[0]]  # the header alone


def test_dispositions_folder_must_exist(world: World, tmp_path: Path) -> None:
    cfg = _config(world, "landing/nowhere/*.csv")
    code, out = _cli(cfg, "ingest")
    assert code == 2 and "source.dispositions" in out and "does not exist" in out
