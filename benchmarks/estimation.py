"""Issue 18's proof on simulated data: does the estimate hold the realised figure, and does a
fraud-pattern shift that hurts the model move the estimate down before any label arrives?

Two worlds of the same cards (``--cards``), simulated day by day, each:

1. 35 days to train on; the champion is trained on them (labels matured) and calibrated on
   its validation days;
2. ``--days`` - 35 more days, scored by ``fraudwatch run``, with their chargebacks
   **withheld**: only the labels reported before training's label cutoff are in the
   warehouse. The estimate of every later day is made then, from calibrated scores alone;
3. the chargebacks are **revealed** (14 more days of reports, so every day's labels have
   matured) and each day's realised figure is held against its estimate's interval.

The ``steady`` world keeps its fraud patterns; in the ``shift`` world, from day 49 on, most
frauds mimic their card's habits (``SimulationOptions.camouflage_start``): the model
misses them. Printed: per world, the share of days whose interval held the realised
figure (per metric), and the mean estimated and realised figures before and after day 49.

    .venv/bin/python benchmarks/estimation.py [--only steady|shift] [--rounds 300]

Each world simulates, trains and scores about 350,000 transactions: minutes on a quiet
machine, half an hour on a loaded one.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

CONFIG = """
data_dir = "var"

[source]
transactions = "landing/transactions/*.parquet"
labels = "landing/labels/*.parquet"
label_delay_days = 7

[source.numeric_columns]
distance_km = "distance_km"

[source.categorical_columns]
channel = "channel"

[training]
holdout_days = 0

[alerts]
channels = ["file"]
threshold = 0.5
daily_budget = {budget}
max_age_days = 1

[model]
num_boost_round = {rounds}
early_stopping_rounds = 30

[estimation]
confidence = 0.9
simulations = 400
"""

START = date(2026, 1, 5)
TRAIN_DAYS = 35
SHIFT_DAY = 49  # the shift world's first camouflaged day, counted from START


def world(
    root: Path, *, cards: int, days: int, shift: bool, budget: int, rounds: int
) -> dict[str, object]:
    from jobs.batch import run_batch
    from jobs.config import load_config
    from jobs.estimation import estimate_performance
    from jobs.ingest import ingest_job
    from jobs.promotion import promote
    from jobs.registry_access import open_registry
    from jobs.simulate import SimulationOptions, simulate
    from jobs.training import train_version
    from jobs.warehouse import configured_warehouse

    landing = root / "landing"
    options = SimulationOptions(
        n_cards=cards,
        n_merchants=max(50, cards // 5),
        camouflage_start=START + timedelta(days=SHIFT_DAY) if shift else None,
    )
    simulate(landing, start=START, days=days + 14, seed=3, options=options)
    for late in range(days, days + 14):  # labels only: every day's chargebacks mature
        (landing / "transactions" / f"{START + timedelta(days=late):%Y-%m-%d}.parquet").unlink()
    cutoff = START + timedelta(days=TRAIN_DAYS + 7)  # training's label cutoff
    withheld = root / "withheld"
    withheld.mkdir()
    for f in sorted((landing / "labels").glob("*.parquet")):
        if date.fromisoformat(f.stem) >= cutoff:
            shutil.move(f, withheld / f.name)
    (root / "config.toml").write_text(CONFIG.format(budget=budget, rounds=rounds))
    cfg = load_config(root / "config.toml")
    ingest_job(cfg)
    t = time.perf_counter()
    v = train_version(cfg, start=START, end=START + timedelta(days=TRAIN_DAYS), actor="bench")
    promote(cfg, v.version, reason="first model", actor="bench")
    trained_s = time.perf_counter() - t
    run_batch(cfg, reports=False)  # scores every day

    reg = open_registry(cfg)
    span = {
        "start": datetime.combine(START + timedelta(days=TRAIN_DAYS), datetime.min.time()),
        "end": datetime.combine(START + timedelta(days=days), datetime.min.time()),
    }
    with configured_warehouse(cfg, read_only=True) as con:
        blind = estimate_performance(
            con, cfg, reg, **span, matured=START, as_of=datetime.combine(cutoff, datetime.min.time())
        )  # fmt: skip
    for f in sorted(withheld.glob("*.parquet")):
        shutil.move(f, landing / "labels" / f.name)
    ingest_job(cfg)
    with configured_warehouse(cfg, read_only=True) as con:
        seen = estimate_performance(
            con, cfg, reg, **span, matured=START + timedelta(days=days),
            as_of=datetime.combine(START + timedelta(days=days + 14), datetime.min.time()),
        )  # fmt: skip
    assert blind is not None and seen is not None
    return {"blind": blind, "seen": seen, "train_seconds": trained_s, "version": v}


def report(name: str, out: dict[str, object]) -> None:
    from reports.estimation import METRICS, EstimationSummary

    blind, seen = out["blind"], out["seen"]
    assert isinstance(blind, EstimationSummary) and isinstance(seen, EstimationSummary)
    shift = START + timedelta(days=SHIFT_DAY)
    print(f"\n== {name} world: estimates made with the labels withheld, held against them later")
    for d_blind, d_seen in zip(blind.days, seen.days, strict=True):
        assert d_blind.estimated == d_seen.estimated  # the labels never enter the estimate
    for m in METRICS:
        held, compared = seen.coverage(m)
        before = [d for d in seen.days if d.day < shift]
        after = [d for d in seen.days if d.day >= shift]

        def mean(days: list, real: bool, m: str = m) -> str:
            got = [d.realised.get(m) if real else d.estimated[m].estimate for d in days]
            vals = [v for v in got if v is not None]
            return f"{sum(vals) / len(vals):.3f}" if vals else "n/a"

        split = [sum(1 for d in part if d.holds(m)) for part in (before, after)]
        print(
            f"{m:24s} interval held the realised figure on {held}/{compared} days "
            f"({held / compared:.0%}; before {shift}: {split[0]}/{len(before)}, from it: "
            f"{split[1]}/{len(after)}); estimate before/after: {mean(before, False)} / "
            f"{mean(after, False)}; realised: {mean(before, True)} / {mean(after, True)}"
        )
    print(f"training took {out['train_seconds']:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=2000)
    parser.add_argument("--days", type=int, default=63)
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=300, help="most boosting rounds")
    parser.add_argument("--only", choices=["steady", "shift"], default=None)
    args = parser.parse_args()
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"uptime before: {load}")
    with tempfile.TemporaryDirectory(prefix="fw-estimation-") as tmp:
        for name, shift in (("steady", False), ("shift", True)):
            if args.only and name != args.only:
                continue
            out = world(
                Path(tmp) / name,
                cards=args.cards,
                days=args.days,
                shift=shift,
                budget=args.budget,
                rounds=args.rounds,
            )
            report(name, out)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"\nuptime after: {load}")


if __name__ == "__main__":
    main()
