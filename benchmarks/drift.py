"""Drift benchmark: 1 million reference vs 1 million current rows of 30 features.

Prints seconds, peak memory and HTML size for fraudwatch's drift report and,
when Evidently is importable (``pip install -e '.[bench]'``), the same for
Evidently's DataDriftPreset on the same data with the same tests, and whether
the per-feature verdicts agree.

Targets (issue 5): at least 20x faster than Evidently, under 2 GB, HTML under
2 MB, the same verdicts where the tests are the same.

    .venv/bin/python benchmarks/drift.py [--rows 1000000] [--no-evidently]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_rss_mb

from reports.drift import DriftPolicy, compute_drift
from reports.html import render_drift

NUMERIC = [f"num_{i:02d}" for i in range(25)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]


def make(rows: int, seed: int, shifted: bool) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for i, name in enumerate(NUMERIC):
        shift = 0.5 if shifted and i < 6 else 0.0
        cols[name] = rng.normal(shift, 1 + i / 25, rows)
    for i, name in enumerate(CATEGORICAL):
        p = np.array([0.5, 0.3, 0.15, 0.05])
        if shifted and i < 2:
            p = np.array([0.3, 0.3, 0.25, 0.15])
        cols[name] = rng.choice(np.array(["a", "b", "c", "d"]), rows, p=p)
    return pl.DataFrame(cols)


def run_ours(
    ref: pl.DataFrame, cur: pl.DataFrame, policy: DriftPolicy
) -> tuple[dict[str, bool], float]:
    t = time.perf_counter()
    result = compute_drift(
        ref, cur, numeric=NUMERIC, categorical=CATEGORICAL, policy=policy, score_column=None
    )
    html = render_drift(result, title="benchmark", meta={})
    seconds = time.perf_counter() - t
    print(
        f"fraudwatch   {seconds:7.1f} s   HTML {len(html.encode()) / 2**20:.2f} MB   "
        f"peak RSS so far {peak_rss_mb():,.0f} MB   drifted {len(result.drifted)}/30"
    )
    return {f.name: f.drifted for f in result.features}, seconds


def run_evidently(
    ref: pl.DataFrame, cur: pl.DataFrame, policy: DriftPolicy
) -> tuple[dict[str, bool], float] | None:
    try:
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset
    except ImportError:
        print("evidently   not installed: pip install -e '.[bench]' to compare")
        return None
    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    t = time.perf_counter()
    r = Dataset.from_pandas(ref.to_pandas(), data_definition=definition)
    c = Dataset.from_pandas(cur.to_pandas(), data_definition=definition)
    preset = DataDriftPreset(
        num_method=policy.numeric_test,
        num_threshold=policy.wasserstein_threshold
        if policy.numeric_test == "wasserstein"
        else policy.ks_threshold,
        cat_method=policy.categorical_test,
        cat_threshold=policy.jensenshannon_threshold
        if policy.categorical_test == "jensenshannon"
        else policy.chi2_threshold,
    )
    snapshot = Report([preset]).run(c, r)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "evidently.html"
        snapshot.save_html(str(out))
        size = out.stat().st_size
    seconds = time.perf_counter() - t
    verdicts: dict[str, bool] = {}
    for metric in snapshot.dict().get("metrics", []):
        # e.g. "ValueDrift(column=num_00,method=wasserstein,threshold=0.1)" -> 0.514
        found = re.match(r"ValueDrift\(column=([^,]+),method=(\w+)", str(metric.get("metric_name")))
        if not found:
            continue
        col, method = found.groups()
        value = float(metric["value"])
        if col in NUMERIC:
            verdicts[col] = (
                value < preset.num_threshold if method == "ks" else value >= preset.num_threshold
            )
        else:
            verdicts[col] = (
                value < preset.cat_threshold if method == "chi2" else value >= preset.cat_threshold
            )
    print(
        f"evidently    {seconds:7.1f} s   HTML {size / 2**20:.2f} MB   peak RSS so far {peak_rss_mb():,.0f} MB"
    )
    return verdicts, seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--no-evidently", action="store_true")
    args = ap.parse_args()
    ref, cur = make(args.rows, 1, False), make(args.rows, 2, True)
    print(
        f"{args.rows:,} reference vs {args.rows:,} current rows, 30 features (25 numeric, 5 categorical)"
    )
    policy = DriftPolicy()  # wasserstein (normed) 0.1, jensenshannon 0.1
    ours, ours_s = run_ours(ref, cur, policy)
    theirs = None if args.no_evidently else run_evidently(ref, cur, policy)
    if theirs:
        verdicts, their_s = theirs
        same = [c for c in verdicts if verdicts[c] == ours[c]]
        print(f"speed-up     {their_s / ours_s:.0f}x (target >= 20x)")
        print(f"verdicts     {len(same)}/{len(verdicts)} features agree")
        for col in sorted(set(verdicts) - set(same)):
            print(f"  differs: {col}: fraudwatch {ours[col]}, evidently {verdicts[col]}")


if __name__ == "__main__":
    main()
