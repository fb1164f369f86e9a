"""A card-fraud world fraudwatch did not write: the public "Fraud Detection Handbook" recipe.

Written from the published description of that simulator (Le Borgne et al., *Reproducible
Machine Learning for Credit Card Fraud Detection*, chapter 3), not from fraudwatch's own
simulator, so the quality benchmark has a second, independent world to measure on:

- customers on a 100 x 100 grid with a mean amount ~ U(5, 100) (std half of it) and a
  mean of U(0, 4) transactions a day; terminals on the same grid; a customer uses the
  terminals within radius 5 of home, uniformly;
- a transaction's time ~ N(noon, 20,000 s) within its day, its amount ~ N(mean, std)
  (redrawn ~ U(0, 2 mean) when negative);
- frauds: (1) any amount over 220; (2) each day two terminals are compromised and all
  their transactions of the next 28 days are fraudulent; (3) each day three customers are
  compromised and a third of their transactions of the next 14 days have five times the
  amount and are fraudulent;
- labels inline (``TX_FRAUD``), the columns named as that dataset names them.

About 9,600 transactions a day at the default size, under 1% of them fraudulent.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl


def generate(
    out_dir: Path,
    *,
    start: date = date(2018, 4, 1),
    days: int = 183,
    customers: int = 5000,
    terminals: int = 10000,
    radius: float = 5.0,
    seed: int = 0,
) -> dict[str, float]:
    """Write ``transactions/DAY.parquet`` under ``out_dir``; return counts."""
    rng = np.random.default_rng(seed)
    cxy = rng.uniform(0, 100, (customers, 2))
    mean_amount = rng.uniform(5, 100, customers)
    std_amount = mean_amount / 2
    tx_per_day = rng.uniform(0, 4, customers)
    txy = rng.uniform(0, 100, (terminals, 2))
    # each customer's terminals within the radius, as one flat array with offsets
    near: list[np.ndarray] = []
    for block in range(0, customers, 500):
        dist = np.hypot(
            cxy[block : block + 500, None, 0] - txy[None, :, 0],
            cxy[block : block + 500, None, 1] - txy[None, :, 1],
        )
        near += [np.flatnonzero(row < radius) for row in dist]
    n_near = np.array([a.size for a in near])
    offsets = np.concatenate([[0], np.cumsum(n_near)[:-1]])
    flat = np.concatenate(near)

    counts = rng.poisson(np.broadcast_to(tx_per_day, (days, customers)))
    counts[:, n_near == 0] = 0
    day_idx, cust = np.nonzero(counts)
    reps = counts[day_idx, cust]
    day_of = np.repeat(day_idx, reps)
    customer = np.repeat(cust, reps)
    n = customer.size
    seconds = rng.normal(86400 / 2, 20000, n).astype(np.int64)
    keep = (seconds > 0) & (seconds < 86400)
    day_of, customer, seconds = day_of[keep], customer[keep], seconds[keep]
    n = customer.size
    amount = rng.normal(mean_amount[customer], std_amount[customer])
    neg = amount < 0
    amount[neg] = rng.uniform(0, 2 * mean_amount[customer[neg]])
    amount = np.round(amount, 2)
    terminal = flat[offsets[customer] + (rng.random(n) * n_near[customer]).astype(np.int64)]

    fraud = amount > 220  # scenario 1
    for d in range(days):  # scenario 2: compromised terminals, 28 days
        hit = rng.choice(terminals, 2, replace=False)
        fraud |= np.isin(terminal, hit) & (day_of >= d) & (day_of < d + 28)
    for d in range(days):  # scenario 3: compromised customers, 14 days
        hit = rng.choice(customers, 3, replace=False)
        idx = np.flatnonzero(np.isin(customer, hit) & (day_of >= d) & (day_of < d + 14))
        chosen = idx[rng.random(idx.size) < 1 / 3]
        amount[chosen] = np.round(amount[chosen] * 5, 2)
        fraud[chosen] = True

    order = np.lexsort((seconds, day_of))
    origin = datetime.combine(start, datetime.min.time())
    frame = pl.DataFrame(
        {
            "TRANSACTION_ID": np.arange(n, dtype=np.int64)[order].astype(str),
            "CUSTOMER_ID": customer[order].astype(str),
            "TERMINAL_ID": terminal[order].astype(str),
            "TX_AMOUNT": amount[order],
            "TX_FRAUD": fraud[order].astype(np.int64),
            "_day": day_of[order],
            "_second": seconds[order],
        }
    ).with_columns(
        (
            pl.lit(origin)
            + pl.duration(days=pl.col("_day"))
            + pl.duration(seconds=pl.col("_second"))
        ).alias("TX_DATETIME")
    )
    folder = out_dir / "transactions"
    folder.mkdir(parents=True, exist_ok=True)
    for (day,), part in frame.group_by(["_day"], maintain_order=True):
        name = (start + timedelta(days=int(day))).isoformat()  # type: ignore[arg-type]
        part.drop("_day", "_second").write_parquet(folder / f"{name}.parquet")
    return {"rows": float(n), "frauds": float(fraud.sum()), "fraud_rate": float(fraud.mean())}


CONFIG = """
data_dir = "var"

[source]
transactions = "landing/transactions/*.parquet"
label_delay_days = 7

[source.columns]
transaction_id = "TRANSACTION_ID"
event_time = "TX_DATETIME"
card_id = "CUSTOMER_ID"
merchant_id = "TERMINAL_ID"
amount = "TX_AMOUNT"
label = "TX_FRAUD"
"""
