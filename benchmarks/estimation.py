"""Issue 18's proof on simulated data: does the estimate hold the realised figure, and does a
fraud-pattern shift that hurts the model move the estimate down before any label arrives?

Two worlds of the same cards (``--cards``), simulated day by day, each:

1. 35 days to train on; the champion is trained on them (labels matured) and calibrated on
   its validation days;
2. ``--days`` - 35 more days, scored by ``fraudwatch run`` (with every chargeback in the
   warehouse: features read the labels reported by each transaction's time, training
   those known at its label cutoff, and each estimate below the labels it may know);
3. **blind**: every later day estimated from the labels reported before training's label
   cutoff only (none of the scored days' labels);
4. **day by day**: each day estimated as the report of the day after it would (the labels
   of the days matured by then; the calibration kept current on them, or the training-time
   calibrator for comparison), and held against its realised figure once all labels are in.

The ``steady`` world keeps its fraud patterns; in the ``shift`` world, from day 49 on, most
frauds mimic their card's habits (``SimulationOptions.camouflage_start``): the model
misses them. Printed: per world and calibration, the share of days whose interval held the
realised figure (per metric), the mean estimated and realised figures before and after day
49, and the blind estimates of the week before and the week from the shift.

    .venv/bin/python benchmarks/estimation.py [--only steady|shift] [--rounds 300] [--keep DIR]

Each world simulates, trains and scores about 350,000 transactions: minutes on a quiet
machine, half an hour on a loaded one (``--keep DIR`` builds them once).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

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
recalibration_days = {recal}
"""

START = date(2026, 1, 5)
TRAIN_DAYS = 35
SHIFT_DAY = 49  # the shift world's first camouflaged day, counted from START


def build(root: Path, *, cards: int, days: int, shift: bool, budget: int, rounds: int) -> float:
    """Simulate, ingest everything (transactions and every chargeback), train the champion
    on the first days, score every day; the seconds training took."""
    from jobs.batch import run_batch
    from jobs.config import load_config
    from jobs.ingest import ingest_job
    from jobs.promotion import promote
    from jobs.simulate import SimulationOptions, simulate
    from jobs.training import train_version

    landing = root / "landing"
    options = SimulationOptions(
        n_cards=cards,
        n_merchants=max(50, cards // 5),
        camouflage_start=START + timedelta(days=SHIFT_DAY) if shift else None,
    )
    simulate(landing, start=START, days=days + 14, seed=3, options=options)
    for late in range(days, days + 14):  # labels only: every day's chargebacks mature
        (landing / "transactions" / f"{START + timedelta(days=late):%Y-%m-%d}.parquet").unlink()
    (root / "config.toml").write_text(CONFIG.format(budget=budget, rounds=rounds, recal=28))
    (root / "training-time.toml").write_text(CONFIG.format(budget=budget, rounds=rounds, recal=0))
    cfg = load_config(root / "config.toml")
    ingest_job(cfg)
    t = time.perf_counter()
    # training reads the labels known at its label cutoff only, scoring's features the labels
    # reported by each transaction's time: the later chargebacks in the warehouse change neither
    v = train_version(cfg, start=START, end=START + timedelta(days=TRAIN_DAYS), actor="bench")
    promote(cfg, v.version, reason="first model", actor="bench")
    trained_s = time.perf_counter() - t
    run_batch(cfg, reports=False)  # scores every day
    (root / "built").write_text(f"{trained_s}\n")
    return trained_s


def world(root: Path, **kw: Any) -> dict[str, Any]:
    """The world's estimates: ``blind``, made with only the labels reported before
    training's label cutoff (so none of the scored days' labels); ``current`` and
    ``training_time``, each day's estimate made as the report of the day after it would
    (its calibration kept current on the matured days before it, or the training-time
    calibrator), held against every label in the end."""
    from jobs.config import load_config
    from jobs.estimation import estimate_performance
    from jobs.registry_access import open_registry
    from jobs.warehouse import configured_warehouse

    trained_s = (
        float((root / "built").read_text()) if (root / "built").exists() else build(root, **kw)
    )
    cfg = load_config(root / "config.toml")
    fixed = load_config(root / "training-time.toml")
    reg = open_registry(cfg)
    span = {
        "start": datetime.combine(START + timedelta(days=TRAIN_DAYS), datetime.min.time()),
        "end": datetime.combine(START + timedelta(days=kw["days"]), datetime.min.time()),
    }
    cutoff = datetime.combine(START + timedelta(days=TRAIN_DAYS + 7), datetime.min.time())
    matured = START + timedelta(days=kw["days"])
    as_of = datetime.combine(START + timedelta(days=kw["days"] + 14), datetime.min.time())
    out: dict[str, Any] = {"train_seconds": trained_s}
    with configured_warehouse(cfg, read_only=True) as con:
        out["blind"] = estimate_performance(con, cfg, reg, **span, matured=START, as_of=cutoff)
        t = time.perf_counter()
        out["current"] = estimate_performance(con, cfg, reg, **span, matured=matured, as_of=as_of)
        out["estimate_seconds"] = time.perf_counter() - t
        out["training_time"] = estimate_performance(
            con, fixed, reg, **span, matured=matured, as_of=as_of
        )
    # the labels never enter the estimate but through the calibration (the two read the same
    # rows from different window tables: a bin's mean score may differ in its last bits)
    for blind, seen in zip(out["blind"].days, out["training_time"].days, strict=True):
        for m, i in blind.estimated.items():
            j = seen.estimated[m]
            assert i.estimate is None or abs(i.estimate - (j.estimate or 0)) < 0.005, (m, i, j)
    return out


def _mean(days: list[Any], m: str, real: bool) -> str:
    got = [d.realised.get(m) if real else d.estimated[m].estimate for d in days]
    vals = [v for v in got if v is not None]
    return f"{sum(vals) / len(vals):.3f}" if vals else "n/a"


def report(name: str, out: dict[str, Any]) -> None:
    from reports.estimation import METRICS

    shift = START + timedelta(days=SHIFT_DAY)
    print(f"\n== {name} world ({len(out['current'].days)} days from {out['current'].days[0].day})")
    for label, key in (
        ("calibration kept current", "current"),
        ("training-time calibration", "training_time"),
    ):
        seen = out[key]
        print(
            f"-- {label}: each day estimated as the next day's report would, held against its labels"
        )
        for m in METRICS:
            held, compared = seen.coverage(m)
            before = [d for d in seen.days if d.day < shift]
            after = [d for d in seen.days if d.day >= shift]
            split = [sum(1 for d in part if d.holds(m)) for part in (before, after)]
            print(
                f"{m:24s} held {held}/{compared} ({held / compared:.0%}; before {shift}: "
                f"{split[0]}/{len(before)}, from it: {split[1]}/{len(after)}); estimate "
                f"before/after: {_mean(before, m, False)} / {_mean(after, m, False)}; "
                f"realised: {_mean(before, m, True)} / {_mean(after, m, True)}"
            )
        print(f"   latest day: {seen.days[-1].calibration}")
    blind = out["blind"]
    week = [d for d in blind.days if shift - timedelta(days=7) <= d.day < shift]
    later = [d for d in blind.days if shift <= d.day < shift + timedelta(days=7)]
    print("-- before any label of the scored days (training-time calibration): the week before "
          f"{shift} / the week from it")  # fmt: skip
    for m in METRICS:
        print(f"{m:24s} estimate {_mean(week, m, False)} / {_mean(later, m, False)}")
    print(
        f"training took {out['train_seconds']:.1f} s; the kept-current estimate "
        f"{out['estimate_seconds']:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=2000)
    parser.add_argument("--days", type=int, default=63)
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=300, help="most boosting rounds")
    parser.add_argument("--only", choices=["steady", "shift"], default=None)
    parser.add_argument(
        "--keep", type=Path, default=None, help="build the worlds here once and reuse them"
    )
    args = parser.parse_args()
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"uptime before: {load}")
    with tempfile.TemporaryDirectory(prefix="fw-estimation-") as tmp:
        for name, shift in (("steady", False), ("shift", True)):
            if args.only and name != args.only:
                continue
            root = (args.keep or Path(tmp)) / name
            root.mkdir(parents=True, exist_ok=True)
            out = world(
                root,
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
