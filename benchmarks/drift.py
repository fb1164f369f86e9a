"""Drift benchmark: 1 million reference vs 1 million current rows of 30 features, each
tool timed as a WHOLE PROCESS (start-up and imports, reading the same Parquet frames,
computing, writing its HTML report) with its own peak memory.

fraudwatch: :func:`reports.drift.compute_drift` (which profiles both frames, then
compares the profiles, as the report does with stored profiles) and
:func:`reports.html.render_drift`. Evidently: ``Report([DataDriftPreset(...)])``
with the same tests and thresholds (normed Wasserstein 0.1, Jensen–Shannon 0.1,
natural logs on both sides), ``save_html``. The data hold six shifted numeric
features, two categorical mix changes, and one column whose missing rate goes from
0% to 90% (values otherwise unchanged), which Evidently does not flag and
fraudwatch does. The verdicts are compared feature by feature.

Targets (issue 15): fraudwatch at least 30x faster than Evidently, under 1 GB.

Evidently pulls in pandas and a web stack; to keep them out of the project's
environment (LightGBM imports pandas when it is installed), it can run in its own
interpreter:

    python -m venv /tmp/ev && /tmp/ev/bin/pip install "evidently>=0.7,<0.8" "pandas>=2,<3" pyarrow
    .venv/bin/python benchmarks/drift.py [--rows 1000000] [--evidently-python /tmp/ev/bin/python]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

NUMERIC = [f"num_{i:02d}" for i in range(25)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]
MISSING = "num_24"  # 0% -> 90% missing in the current frame, values otherwise the same
WASSERSTEIN, JENSENSHANNON = 0.1, 0.1


def make(rows: int, seed: int, shifted: bool, path: Path) -> None:
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for i, name in enumerate(NUMERIC):
        shift = 0.5 if shifted and i < 6 else 0.0
        cols[name] = rng.normal(shift, 1 + i / 25, rows)
    if shifted:
        cols[MISSING][rng.random(rows) < 0.9] = np.nan
    for i, name in enumerate(CATEGORICAL):
        p = np.array([0.5, 0.3, 0.15, 0.05])
        if shifted and i < 2:
            p = np.array([0.3, 0.3, 0.25, 0.15])
        cols[name] = rng.choice(np.array(["a", "b", "c", "d"]), rows, p=p)
    pl.DataFrame(cols).with_columns(pl.col(MISSING).fill_nan(None)).write_parquet(path)


def ours(ref_path: str, cur_path: str, out: str) -> None:
    import polars as pl

    from reports.drift import compute_drift
    from reports.html import render_drift

    ref, cur = pl.read_parquet(ref_path), pl.read_parquet(cur_path)
    result = compute_drift(ref, cur, numeric=NUMERIC, categorical=CATEGORICAL, score_column=None)
    Path(out).write_text(render_drift(result, title="benchmark", meta={}), encoding="utf-8")
    print(json.dumps({f.name: f.drifted for f in result.features}))


def evidently(ref_path: str, cur_path: str, out: str) -> None:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    r = Dataset.from_pandas(pd.read_parquet(ref_path), data_definition=definition)
    c = Dataset.from_pandas(pd.read_parquet(cur_path), data_definition=definition)
    preset = DataDriftPreset(
        num_method="wasserstein",
        num_threshold=WASSERSTEIN,
        cat_method="jensenshannon",
        cat_threshold=JENSENSHANNON,
    )
    snapshot = Report([preset]).run(c, r)
    snapshot.save_html(out)
    verdicts: dict[str, bool] = {}
    for metric in snapshot.dict().get("metrics", []):
        # e.g. "ValueDrift(column=num_00,method=wasserstein,threshold=0.1)" -> 0.514
        found = re.match(r"ValueDrift\(column=([^,]+),method=(\w+)", str(metric.get("metric_name")))
        if found:
            col = found.group(1)
            threshold = WASSERSTEIN if col in NUMERIC else JENSENSHANNON
            verdicts[col] = float(metric["value"]) >= threshold
    print(json.dumps(verdicts))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--evidently-python", help="the interpreter with Evidently installed")
    ap.add_argument("--no-evidently", action="store_true")
    ap.add_argument("--side", choices=["ours", "evidently"], help=argparse.SUPPRESS)
    ap.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        (ours if args.side == "ours" else evidently)(*args.paths)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import run_measured

    print(
        f"{args.rows:,} reference vs {args.rows:,} current rows, 30 features (25 numeric, "
        f"5 categorical); {MISSING} 0% -> 90% missing; whole processes"
    )
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        make(args.rows, 1, False, d / "ref.parquet")
        make(args.rows, 2, True, d / "cur.parquet")
        runs = [("fraudwatch", sys.executable, "ours")]
        if not args.no_evidently:
            runs.append(("evidently", args.evidently_python or sys.executable, "evidently"))
        results = {}
        for label, python, side in runs:
            html = d / f"{side}.html"
            command = [python, __file__, "--side", side, str(d / "ref.parquet")]
            command += [str(d / "cur.parquet"), str(html)]
            seconds, code, peak, _ = run_measured(command, d / f"{side}.out", d / f"{side}.err")
            if code != 0:
                print(f"{label:12s} failed: {(d / f'{side}.err').read_text()[-1500:]}")
                continue
            verdicts = json.loads((d / f"{side}.out").read_text().strip().splitlines()[-1])
            results[label] = (seconds, verdicts)
            print(
                f"{label:12s} {seconds:7.1f} s   peak RSS {peak:,.0f} MB   "
                f"HTML {html.stat().st_size / 2**20:.2f} MB   "
                f"drifted {sum(verdicts.values())}/30 ({MISSING}: {verdicts.get(MISSING)})"
            )
    if len(results) == 2:
        (ours_s, mine), (theirs_s, other) = results["fraudwatch"], results["evidently"]
        print(f"speed-up     {theirs_s / ours_s:.0f}x (target >= 30x, whole processes)")
        same = [c for c in other if other[c] == mine.get(c)]
        print(f"verdicts     {len(same)}/{len(other)} features agree")
        for col in sorted(set(other) - set(same)):
            print(f"  differs: {col}: fraudwatch {mine.get(col)}, evidently {other[col]}")


if __name__ == "__main__":
    main()
