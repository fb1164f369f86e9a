"""Does the model catch fraud? fraudwatch's defaults against a logistic regression, one run.

On a world (fraudwatch's own simulator, or the independent "handbook" world of
:mod:`benchmarks.outside_world`), as a user would: land the files, ``fraudwatch ingest``,
``fraudwatch train --end D`` with the defaults (both as commands, their time and peak
memory measured), then score the out-of-time week that starts ``label_delay_days`` after
``D`` and print AUC, average precision and card precision@100 for the registered version
next to a scikit-learn logistic regression fitted on the same training frame (same
features, standardised, categoricals one-hot, missing values filled with the training
medians).

    .venv/bin/python benchmarks/quality.py                    # both worlds
    .venv/bin/python benchmarks/quality.py --world outside    # the handbook world only
    .venv/bin/python benchmarks/quality.py --world outside --window-days 120
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import outside_world
import polars as pl
from common import run_measured

FRAUDWATCH_CONFIG = """
data_dir = "var"

[source]
transactions = "landing/transactions/*.parquet"
labels = "landing/labels/*.parquet"
label_delay_days = 7

[source.numeric_columns]
distance_km = "distance_km"

[source.categorical_columns]
channel = "channel"
"""


def build(world: str, root: Path, days: int, seed: int) -> tuple[date, dict[str, float]]:
    """Land the world's files under ``root/landing``; return its first day and counts."""
    if world == "outside":
        start = date(2018, 4, 1)
        counts = outside_world.generate(root / "landing", start=start, days=days, seed=seed)
        (root / "config.toml").write_text(outside_world.CONFIG)
        return start, counts
    from jobs.simulate import SimulationOptions, simulate

    start = date(2026, 1, 5)
    summary = simulate(
        root / "landing",
        start=start,
        days=days,
        seed=seed,
        options=SimulationOptions(n_cards=6000, n_merchants=1500),
    )
    (root / "config.toml").write_text(FRAUDWATCH_CONFIG)
    return start, {
        "rows": float(summary.rows),
        "frauds": float(summary.frauds),
        "fraud_rate": summary.fraud_rate,
    }


def command(root: Path, *args: str) -> tuple[float, float]:
    """Run ``fraudwatch ARGS`` as a user would: seconds and peak memory (MB)."""
    exe = str(Path(sys.executable).with_name("fraudwatch"))
    out, err = root / "out.txt", root / "err.txt"
    seconds, code, peak, _ = run_measured(
        [exe, "--config", str(root / "config.toml"), *args], out, err
    )
    if code != 0:
        sys.exit(f"fraudwatch {' '.join(args)} failed ({code}):\n{err.read_text()[-3000:]}")
    return seconds, peak


def card_precision_at_k(frame: pl.DataFrame, k: int) -> float:
    from reports.performance import daily_metrics

    daily = daily_metrics(frame, threshold=0.5, k=k)
    return float(daily["card_precision_at_k"].drop_nulls().mean() or 0.0)  # type: ignore[arg-type]


def scores(frame: pl.DataFrame, score: np.ndarray, k: int) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = frame["is_fraud"].cast(pl.Int8).to_numpy()
    scored = frame.select("event_time", "card_id", "amount", "is_fraud").with_columns(
        pl.Series("score", score)
    )
    return {
        "auc": float(roc_auc_score(y, score)),
        "ap": float(average_precision_score(y, score)),
        "card_p@100": card_precision_at_k(scored, k),
    }


def logistic_regression(
    train: pl.DataFrame, test: pl.DataFrame, names: list[str], categorical: list[str]
) -> np.ndarray:
    """A plain baseline: median-imputed, standardised numbers and one-hot categoricals."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [n for n in names if n not in categorical]
    imputer, scaler = SimpleImputer(strategy="median"), StandardScaler()
    onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)

    def numbers(f: pl.DataFrame) -> np.ndarray:
        return f.select(pl.col(n).cast(pl.Float64).fill_nan(None) for n in numeric).to_numpy()

    def labels(f: pl.DataFrame) -> np.ndarray:
        cols = [pl.col(c).cast(pl.Utf8).fill_null("(missing)") for c in categorical]
        return f.select(cols).to_numpy() if categorical else np.empty((f.height, 0))

    x_train = np.hstack(
        [scaler.fit_transform(imputer.fit_transform(numbers(train)))]
        + ([onehot.fit_transform(labels(train))] if categorical else [])
    )
    x_test = np.hstack(
        [scaler.transform(imputer.transform(numbers(test)))]
        + ([onehot.transform(labels(test))] if categorical else [])
    )
    model = LogisticRegression(max_iter=2000)
    model.fit(x_train, train["is_fraud"].cast(pl.Int8).to_numpy())
    return np.asarray(model.predict_proba(x_test)[:, 1])


def evaluate(root: Path, train_end: date, test_days: int, k: int) -> dict[str, object]:
    from jobs.config import load_config
    from jobs.model_inputs import encode
    from jobs.registry_access import open_registry
    from jobs.training import TrainingWindow, load_training_data
    from jobs.warehouse import configured_warehouse

    cfg = load_config(root / "config.toml")
    reg = open_registry(cfg)
    info = reg.get_alias(cfg.settings.model.name, "challenger")
    assert info is not None
    booster = reg.load_booster(cfg.settings.model.name, info.version)
    lineage = info.lineage
    assert lineage.label_cutoff is not None  # a version fraudwatch trained records its cutoff
    delay = timedelta(days=cfg.settings.source.label_delay_days)
    test_start = datetime.combine(train_end, datetime.min.time()) + delay
    test_end = test_start + timedelta(days=test_days)
    with configured_warehouse(cfg) as con:
        clock = test_end + delay
        train = load_training_data(
            con,
            cfg,
            TrainingWindow(
                lineage.training_start, lineage.training_end, lineage.label_cutoff, clock
            ),
        )
        test = load_training_data(con, cfg, TrainingWindow(test_start, test_end, clock, clock))
    names, categorical = list(train.features), list(train.categorical)
    x_test = encode(test.frame, names, categorical, lineage.categorical_vocab)
    ours = scores(test.frame, np.asarray(booster.predict(x_test)), k)
    baseline = scores(
        test.frame, logistic_regression(train.frame, test.frame, names, categorical), k
    )
    return {
        "trees": booster.num_trees(),
        "train_rows": train.frame.height,
        "test_rows": test.frame.height,
        "test_frauds": int(test.frame["is_fraud"].sum()),
        "fraudwatch": ours,
        "logistic_regression": baseline,
        "data_quality": lineage.data_quality.get("status"),
        "warnings": lineage.data_quality.get("warnings", []),
    }


def run(world: str, days: int, train_day: int, window_days: int | None, k: int, seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start, counts = build(world, root, days, seed)
        if window_days:
            with (root / "config.toml").open("a") as fh:
                fh.write(f"\n[training]\nwindow_days = {window_days}\n")
        ingest_s, ingest_mb = command(root, "ingest")
        train_end = start + timedelta(days=train_day)
        train_s, train_mb = command(root, "train", "--end", train_end.isoformat())
        result = evaluate(root, train_end, 7, k)
        print(
            f"\n== world: {world} ({counts['rows']:,.0f} rows, fraud rate "
            f"{counts['fraud_rate']:.2%}); train --end {train_end} (window "
            f"{window_days or 45} days), test: the week from {train_end + timedelta(days=7)}"
        )
        print(
            f"ingest {ingest_s:.1f} s, peak {ingest_mb:,.0f} MB; "
            f"train {train_s:.1f} s, peak {train_mb:,.0f} MB; trees {result['trees']}; "
            f"train rows {result['train_rows']:,}, test rows {result['test_rows']:,} "
            f"({result['test_frauds']} frauds); data quality {result['data_quality']}"
        )
        print(f"{'':22}{'AUC':>8}{'AP':>8}{'card P@' + str(k):>12}")
        for name in ("fraudwatch", "logistic_regression"):
            m = result[name]
            assert isinstance(m, dict)
            print(f"{name:22}{m['auc']:8.3f}{m['ap']:8.3f}{m['card_p@100']:12.3f}")
        print(json.dumps({"world": world, **result}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", choices=["both", "outside", "fraudwatch"], default="both")
    parser.add_argument("--window-days", type=int, default=None, help="[training] window_days")
    parser.add_argument("--days", type=int, default=None, help="days of data to generate")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None, help="another world of the same shape")
    args = parser.parse_args()
    if args.world in ("both", "outside"):
        # the handbook's six months; train up to day 120 (45-day window by default)
        run("outside", args.days or 183, 120, args.window_days, args.k, args.seed or 0)
    if args.world in ("both", "fraudwatch"):
        run("fraudwatch", args.days or 100, 80, args.window_days, args.k, args.seed or 3)


if __name__ == "__main__":
    main()
