"""Property-based: hostile landing files never crash ingest; every row is loaded or quarantined."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

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


def _check(root: Path, rows: list[dict[str, object]]) -> None:
    cfg = load_config(root / "config.toml")
    with warehouse(cfg.warehouse_path, extra_columns=cfg.extra_columns()) as con:
        result = ingest(cfg, con)
        [f] = result.files
        assert f.rows_read == len(rows)
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
