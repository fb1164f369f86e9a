"""Property-based: hostile landing files never crash ingest; every row is loaded or quarantined."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.config import load_config
from jobs.ingest import ingest
from jobs.warehouse import warehouse

CONFIG = """
data_dir = "var"
[source]
transactions = "landing/*.{ext}"
[source.numeric_columns]
distance_km = "distance_km"
[source.categorical_columns]
channel = "channel"
"""

text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)
ids = st.one_of(st.sampled_from(["t1", "t2", "t3", "", " "]), text)
times = st.one_of(
    st.sampled_from(
        ["2026-03-01 10:00:00", "2026-03-01T10:00:00Z", "2099-01-01 00:00:00", "", "yesterday"]
    ),
    st.datetimes().map(lambda d: d.isoformat()),
    text,
)
amounts = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "-1", "12,5", "1e308", "1e309", "NaN", "inf"]),
    text,
)
row = st.fixed_dictionaries(
    {
        "transaction_id": ids,
        "event_time": times,
        "card_id": st.one_of(text, st.just("c1")),
        "merchant_id": st.one_of(text, st.just("<script>alert(1)</script>")),
        "amount": amounts,
        "channel": st.one_of(text, st.none()),
        "distance_km": st.one_of(amounts, st.none()),
    }
)


def _check(root: Path, rows: list[Any], records: int | None = None) -> None:
    """Every record of the file is loaded or quarantined; what is loaded is clean. A JSON
    lines file without a single object is set aside whole (nothing to map), with why."""
    cfg = load_config(root / "config.toml")
    with warehouse(cfg.warehouse_path, extra_columns=cfg.extra_columns()) as con:
        result = ingest(con, cfg)
        [f] = result.files
        if not any(isinstance(r, dict) for r in rows):
            assert f.status == "set_aside" and "missing" in (f.note or "")
            assert con.execute("SELECT count(*) FROM transactions").fetchall() == [(0,)]
            return
        assert f.status == "ingested", f.note
        assert f.rows_read == (len(rows) if records is None else records)
        assert f.rows_loaded + f.rows_quarantined == len(rows)
        got = con.execute(
            "SELECT count(*), count(DISTINCT transaction_id), min(amount), "
            "bool_and(isfinite(amount)), count(*) FILTER (WHERE event_time IS NULL) FROM transactions"
        ).fetchall()[0]
        n, distinct, low, finite, no_time = got
        assert n == f.rows_loaded and distinct == n and no_time == 0
        if n:
            assert low >= 0 and finite
        bad = con.execute("SELECT count(*), count(reason), count(raw) FROM quarantine").fetchall()[
            0
        ]
        assert bad == (f.rows_quarantined,) * 3
        for (raw,) in con.execute("SELECT raw FROM quarantine").fetchall():
            json.loads(raw)  # the raw values are kept as valid JSON
        numbers = con.execute(  # every record once, by its own number
            "SELECT source_row FROM transactions UNION ALL SELECT source_row FROM quarantine "
            "ORDER BY 1"
        ).fetchall()
        assert [n for (n,) in numbers] == list(range(1, f.rows_read + 1))
        # ids are text, trimmed, the same whatever their JSON type: never quoted, never padded
        assert con.execute(
            "SELECT count(*) FROM transactions WHERE transaction_id <> trim(transaction_id) "
            "OR card_id <> trim(card_id) OR starts_with(card_id, '\"')"
        ).fetchall() == [(0,)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row, min_size=1, max_size=15))
def test_hostile_csv(rows: list[dict[str, object]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "config.toml").write_text(CONFIG.format(ext="csv"))
        (root / "landing").mkdir()
        with (root / "landing" / "a.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        _check(root, rows)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row, min_size=1, max_size=15))
def test_hostile_jsonl(rows: list[dict[str, object]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "config.toml").write_text(CONFIG.format(ext="jsonl"))
        (root / "landing").mkdir()
        with (root / "landing" / "a.jsonl").open("w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps({k: v for k, v in r.items()}) + "\n")
        _check(root, rows)


# the same value as a JSON number, a JSON string (padded or not), or a JSON oddity
json_ids = st.one_of(
    st.integers(-5, 5), st.integers(4111, 4112).map(str), st.sampled_from([" 4111", "4111 "])
)
json_value = st.one_of(
    json_ids, st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none(), text
)
mixed_row = st.fixed_dictionaries(
    {
        "transaction_id": st.one_of(json_ids, text),
        "event_time": st.one_of(times, st.integers(0, 2_000_000_000)),
        "card_id": json_ids,
        "merchant_id": json_value,
        "amount": st.one_of(st.integers(-3, 10**6), amounts, st.floats()),
        "channel": json_value,
        "distance_km": st.one_of(json_value, st.lists(st.integers(), max_size=2)),
    }
)
broken_line = st.sampled_from(
    ['{"transaction_id": "x", "amount": 1', "[1, 2]", '"just a string"', "{nope}", "null"]
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(mixed_row, broken_line), min_size=1, max_size=15))
def test_hostile_jsonl_mixed_types_and_broken_lines(rows: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "config.toml").write_text(CONFIG.format(ext="jsonl"))
        (root / "landing").mkdir()
        with (root / "landing" / "a.jsonl").open("w", encoding="utf-8") as fh:
            for r in rows:
                fh.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
        _check(root, rows)
        # the same card, whatever its JSON type, is one card
        cfg = load_config(root / "config.toml")
        with warehouse(cfg.warehouse_path) as con:
            cards = {
                c for (c,) in con.execute("SELECT DISTINCT card_id FROM transactions").fetchall()
            }
        assert cards <= {"-5", "-4", "-3", "-2", "-1", "0", "1", "2", "3", "4", "5", "4111", "4112"}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(row, st.integers(-3, 3)),  # each record with fields dropped or added
        min_size=1,
        max_size=15,
    )
)
def test_hostile_ragged_csv(records: list[tuple[dict[str, object], int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "config.toml").write_text(CONFIG.format(ext="csv"))
        (root / "landing").mkdir()
        out = io.StringIO(newline="")
        writer = csv.writer(out)
        writer.writerow(list(records[0][0]))
        for r, change in records:
            fields = ["" if v is None else str(v) for v in r.values()]
            fields = fields[:change] if change < 0 else fields + ["extra"] * change
            writer.writerow(fields)
        (root / "landing" / "a.csv").write_bytes(out.getvalue().encode("utf-8"))
        _check(root, [r for r, _ in records])
