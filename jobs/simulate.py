"""A realistic synthetic card-transaction stream, deterministic for a seed.

Every day is a pure function of ``(seed, date, options)``: card and merchant
profiles derive from the seed alone, and fraud episodes from the seed and the
day they start. Simulating a range in one call or day by day gives the same
files, so the demo can feed the warehouse one day at a time.

What is in it:

- cards with their own habits (typical amount, how often, a home area and a
  few home merchants, an online share) and a daily and weekly rhythm;
- legitimate behaviour that looks risky (big purchases, travel far from home);
- fraud patterns, chosen so a model is useful but not perfect
  (see :mod:`jobs.fraud_patterns`): large amounts, merchants compromised for
  some days whose customers are defrauded afterwards, compromised cards
  bursting far from home, and, from ``new_pattern_start``, card testing;
- chargebacks (``labels/``) reported after a realistic delay (most within
  ``label_delay_days``, a tail to twice that): the file of day D holds the
  reports made on D.

Knobs inject drift (``amount_inflation`` from ``drift_start``, the new
pattern) and defects (``missing`` rates per column between ``defect_start``
and ``defect_end``, ``malformed_rate`` broken rows).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from jobs.fraud_patterns import (
    PATTERNS,
    Profiles,
    camouflage,
    compromised_terminals,
    day_frauds,
    make_profiles,
)

MAX_REPORT_DELAY_DAYS = 14
HOUR_WEIGHTS = np.array(
    [
        1,
        0.6,
        0.4,
        0.3,
        0.3,
        0.5,
        1.2,
        2.5,
        4,
        5,
        5.5,
        6,
        7,
        6.5,
        6,
        6,
        6.5,
        7,
        7.5,
        7,
        6,
        4.5,
        3,
        1.8,
    ]
)


@dataclass(frozen=True)
class SimulationOptions:
    n_cards: int = 3000
    n_merchants: int = 600
    mean_daily_tx_per_card: float = 2.2
    amount_inflation: float = 0.0  # per day, compounding, from drift_start
    drift_start: date | None = None
    new_pattern_start: date | None = None
    missing: dict[str, float] = field(default_factory=dict)  # column -> share of nulls
    defect_start: date | None = None
    defect_end: date | None = None  # inclusive; open-ended when None
    malformed_rate: float = 0.0
    # chargebacks: ~92% reported within this many days (as [source] label_delay_days says),
    # the rest up to twice as late
    label_delay_days: float = 7.0
    # compromised terminals: episodes started per merchant per day (see fraud_patterns)
    terminal_compromise_rate: float = 0.0003
    # a fraud-pattern shift: from this day, camouflage_share of the frauds mimic their card's
    # habits (home merchant, daytime, usual amount): the model misses them (fraud_patterns)
    camouflage_start: date | None = None
    camouflage_share: float = 0.7
    # ids as many processors issue them: random UUIDs, which do not grow with time (the
    # default ids do: tx<day>-<n>), so no id range bounds a search of the history
    random_ids: bool = False


@dataclass(frozen=True)
class SimulationSummary:
    days: int
    rows: int
    frauds: int
    fraud_rate: float
    chargebacks: int
    malformed: int
    files: list[Path]
    by_pattern: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["files"] = [str(p) for p in self.files]
        return d


def _rng(seed: int, *parts: int) -> np.random.Generator:
    return np.random.default_rng([seed, *parts])


def _in_defect(day: date, options: SimulationOptions) -> bool:
    if not options.missing or options.defect_start is None:
        return bool(options.missing) and options.defect_start is None
    end = options.defect_end or date.max
    return options.defect_start <= day <= end


def legit_day(profiles: Profiles, day: date, seed: int, options: SimulationOptions) -> pl.DataFrame:
    """The legitimate transactions of one day."""
    rng = _rng(seed, day.toordinal(), 1)
    weekend = day.weekday() >= 5
    rate = profiles.rate * options.mean_daily_tx_per_card * (1.15 if weekend else 1.0)
    counts = rng.poisson(rate)
    card_idx = np.repeat(np.arange(profiles.n_cards), counts)
    n = card_idx.size
    hours = rng.choice(24, size=n, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    seconds = hours * 3600 + rng.integers(0, 3600, n)
    home = rng.random(n) < 0.8
    home_pick = profiles.home_merchants[
        card_idx, rng.integers(0, profiles.home_merchants.shape[1], n)
    ]
    merchant = np.where(home, home_pick, rng.integers(0, profiles.n_merchants, n))
    amount = np.exp(profiles.log_amount[card_idx] + rng.normal(0, 0.55, n))
    big = rng.random(n) < 0.01  # legit big purchases
    amount = np.where(big, amount * rng.uniform(4, 12, n), amount)
    online = rng.random(n) < profiles.online_share[card_idx]
    channel = np.where(online, "online", profiles.merchant_channel[merchant])
    travel = rng.random(n) < 0.03  # legit travel
    dist = np.hypot(
        profiles.card_xy[card_idx, 0] - profiles.merchant_xy[merchant, 0],
        profiles.card_xy[card_idx, 1] - profiles.merchant_xy[merchant, 1],
    )
    dist = np.where(travel, dist + rng.exponential(400, n), dist)
    dist = np.where(online, rng.exponential(30, n), dist)
    return pl.DataFrame(
        {
            "card": card_idx.astype(np.int64),
            "merchant": merchant.astype(np.int64),
            "second": seconds.astype(np.int64),
            "amount": amount,
            "channel": channel.astype(str),
            "distance_km": dist,
            "pattern": np.full(n, "", dtype=object).astype(str),
        }
    )


def simulate_day(
    profiles: Profiles, day: date, seed: int, options: SimulationOptions
) -> pl.DataFrame:
    """All transactions of ``day`` (legit and fraud), with ids, times and the hidden truth."""
    legit = legit_day(profiles, day, seed, options)
    terminals = compromised_terminals(profiles, day, seed, options.terminal_compromise_rate)
    if terminals:
        fraud_share = legit["merchant"].replace_strict(
            terminals, default=0.0, return_dtype=pl.Float64
        )
        hit = _rng(seed, day.toordinal(), 8).random(legit.height) < fraud_share.to_numpy()
        legit = legit.with_columns(
            pl.when(pl.Series(hit))
            .then(pl.lit("compromised_terminal"))
            .otherwise(pl.col("pattern"))
            .alias("pattern")
        )
    fraud = day_frauds(profiles, day, seed, options.new_pattern_start)
    if options.camouflage_start is not None and day >= options.camouflage_start:
        fraud = camouflage(profiles, fraud, day, seed, options.camouflage_share)
    frame = pl.concat([legit, fraud], how="vertical_relaxed").sort(["second", "card", "merchant"])
    rng = _rng(seed, day.toordinal(), 9)
    if options.amount_inflation and options.drift_start and day >= options.drift_start:
        factor = (1 + options.amount_inflation) ** ((day - options.drift_start).days + 1)
        frame = frame.with_columns(pl.col("amount") * factor)
    frame = frame.with_columns(
        pl.col("amount").round(2),
        pl.col("distance_km").round(1),
    )
    start = datetime.combine(day, datetime.min.time())
    ids = [f"tx{day:%Y%m%d}-{i:06d}" for i in range(frame.height)]
    if options.random_ids:
        draw = _rng(seed, day.toordinal(), 10)
        ids = [str(uuid.UUID(bytes=draw.bytes(16), version=4)) for _ in ids]
    frame = frame.with_columns(
        pl.Series("transaction_id", ids),
        (pl.lit(start) + pl.duration(seconds=pl.col("second"))).alias("event_time"),
        pl.format("card{}", pl.col("card").cast(pl.Utf8).str.zfill(6)).alias("card_id"),
        pl.format("m{}", pl.col("merchant").cast(pl.Utf8).str.zfill(5)).alias("merchant_id"),
        (pl.col("pattern") != "").alias("is_fraud"),
    )
    if _in_defect(day, options):
        for column, share in options.missing.items():
            mask = rng.random(frame.height) < share
            frame = frame.with_columns(
                pl.when(pl.Series(mask)).then(None).otherwise(pl.col(column)).alias(column)
            )
    return frame


def chargebacks(
    frame: pl.DataFrame, day: date, seed: int, label_delay_days: float = 7.0
) -> pl.DataFrame:
    """The chargebacks of ``frame``'s frauds with their report times: ~92% within
    ``label_delay_days``, none later than twice that."""
    frauds = frame.filter(pl.col("is_fraud"))
    rng = _rng(seed, day.toordinal(), 7)
    scale = 1.6 * label_delay_days / 7.0
    longest = max(2 * label_delay_days, 0.5)
    delay_days = np.minimum(rng.gamma(2.0, scale, frauds.height) + 0.25, longest - 0.01)
    return frauds.select(
        "transaction_id",
        pl.lit(True).alias("is_fraud"),
        (pl.col("event_time") + pl.Series(delay_days * 86400e6).cast(pl.Duration("us"))).alias(
            "reported_at"
        ),
    )


PUBLIC_COLUMNS = [
    "transaction_id",
    "event_time",
    "card_id",
    "merchant_id",
    "amount",
    "channel",
    "distance_km",
]


def _malform(
    frame: pl.DataFrame, rate: float, rng: np.random.Generator, text: bool
) -> tuple[pl.DataFrame, int]:
    """Break ``rate`` of the rows in the ways real feeds break."""
    n = frame.height
    broken = np.flatnonzero(rng.random(n) < rate)
    if broken.size == 0:
        return frame, 0
    kinds = ["null_id", "negative", "nan", "duplicate", "future"] + (
        ["bad_time", "bad_amount"] if text else []
    )
    kind = rng.choice(kinds, broken.size)
    out = frame.with_columns(
        pl.col("transaction_id").cast(pl.Utf8),
        pl.col("event_time").cast(pl.Utf8) if text else pl.col("event_time"),
        pl.col("amount").cast(pl.Utf8) if text else pl.col("amount"),
    )
    ids = out["transaction_id"].to_list()
    times = out["event_time"].to_list()
    amounts = out["amount"].to_list()
    for i, k in zip(broken.tolist(), kind.tolist(), strict=True):  # only the broken handful
        if k == "null_id":
            ids[i] = None
        elif k == "negative":
            amounts[i] = "-12.5" if text else -12.5
        elif k == "nan":
            amounts[i] = "NaN" if text else float("nan")
        elif k == "duplicate":
            ids[i] = ids[(i + 1) % n]
        elif k == "future":
            times[i] = "2099-01-01 00:00:00" if text else datetime(2099, 1, 1)
        elif k == "bad_time":
            times[i] = "yesterday-ish"
        elif k == "bad_amount":
            amounts[i] = "12,50 EUR"
    out = out.with_columns(
        pl.Series("transaction_id", ids, dtype=pl.Utf8),
        pl.Series("event_time", times, dtype=out["event_time"].dtype),
        pl.Series("amount", amounts, dtype=out["amount"].dtype),
    )
    return out, int(broken.size)


def _write(frame: pl.DataFrame, path: Path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    if fmt == "parquet":
        frame.write_parquet(tmp)
    elif fmt == "csv":
        frame.write_csv(tmp)
    else:
        with tmp.open("w") as fh:
            for row in frame.iter_rows(named=True):  # small files; jsonl is for defect demos
                fh.write(json.dumps(row, default=str) + "\n")
    tmp.replace(path)


def simulate(
    out_dir: Path,
    *,
    start: date,
    days: int,
    seed: int = 7,
    options: SimulationOptions | None = None,
    fmt: str = "parquet",
) -> SimulationSummary:
    """Write ``days`` days from ``start``: ``transactions/DAY.<fmt>`` and ``labels/DAY.<fmt>``."""
    if fmt not in ("parquet", "csv", "jsonl"):
        raise ValueError(f"unknown format {fmt!r}: parquet, csv or jsonl")
    options = options or SimulationOptions()
    profiles = make_profiles(seed, options.n_cards, options.n_merchants)
    files: list[Path] = []
    rows = frauds = reports = malformed = 0
    by_pattern = {p: 0 for p in PATTERNS}
    pending: dict[date, pl.DataFrame] = {}
    # chargebacks reported on these days may come from frauds up to two delays earlier
    longest = max(MAX_REPORT_DELAY_DAYS, int(np.ceil(2 * options.label_delay_days)))
    for offset in range(-longest, days):
        day = start + timedelta(days=offset)
        frame = simulate_day(profiles, day, seed, options)
        pending[day] = chargebacks(frame, day, seed, options.label_delay_days)
        if offset < 0:
            continue
        rows += frame.height
        frauds += int(frame["is_fraud"].sum())
        for p, c in frame.group_by("pattern").len().iter_rows():
            if p:
                by_pattern[p] = by_pattern.get(p, 0) + int(c)
        public, broken = _malform(
            frame.select(PUBLIC_COLUMNS),
            options.malformed_rate,
            _rng(seed, day.toordinal(), 11),
            fmt != "parquet",
        )
        malformed += broken
        path = out_dir / "transactions" / f"{day:%Y-%m-%d}.{fmt}"
        _write(public, path, fmt)
        files.append(path)
        lo = datetime.combine(day, datetime.min.time())
        hi = lo + timedelta(days=1)
        reported = pl.concat(list(pending.values())).filter(
            (pl.col("reported_at") >= lo) & (pl.col("reported_at") < hi)
        )
        reports += reported.height
        lpath = out_dir / "labels" / f"{day:%Y-%m-%d}.{fmt}"
        _write(reported.sort("reported_at"), lpath, fmt)
        files.append(lpath)
        pending = {d: f for d, f in pending.items() if (day - d).days < longest}
    return SimulationSummary(
        days=days,
        rows=rows,
        frauds=frauds,
        fraud_rate=frauds / rows if rows else 0.0,
        chargebacks=reports,
        malformed=malformed,
        files=files,
        by_pattern=by_pattern,
    )
