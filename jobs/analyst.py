"""A simulated analyst for the simulated world (issue 18): reviews the alerts of the
warehouse and drops the decisions into the dispositions feed, as a case-management system
would.

The analyst knows what the simulator knows (a day's frauds are a pure function of the seed,
the day and the options, :func:`jobs.simulate.simulate_day`), calls the customer a few hours
after the transaction, and decides with some error: a fraud is confirmed with probability
``1 - miss_rate``, a legitimate alert is cleared with probability ``1 - false_alarm_rate``,
and ``unreachable_rate`` of the customers never answer (recorded, no label).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from jobs.fraud_patterns import make_profiles
from jobs.simulate import SimulationOptions, simulate_day


@dataclass(frozen=True)
class AnalystOptions:
    miss_rate: float = 0.05  # a fraud cleared by mistake
    false_alarm_rate: float = 0.03  # a legitimate alert confirmed by mistake
    unreachable_rate: float = 0.1  # no answer: recorded as unreachable
    delay_hours: tuple[float, float] = (0.5, 8.0)  # review this long after the transaction
    names: tuple[str, ...] = ("ana", "ben", "chloe")


@dataclass(frozen=True)
class Reviewed:
    path: Path
    alerts: int
    confirmed: int
    cleared: int
    unreachable: int
    right: int  # decisions (fraud or legitimate) that match the truth


def frauds_of(days: list[date], seed: int, options: SimulationOptions) -> set[str]:
    """The simulated world's fraud transaction ids of ``days`` (the truth)."""
    profiles = make_profiles(seed, options.n_cards, options.n_merchants)
    out: set[str] = set()
    for day in days:
        frame = simulate_day(profiles, day, seed, options)
        out.update(frame.filter(pl.col("is_fraud"))["transaction_id"].to_list())
    return out


def review_alerts(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    *,
    seed: int,
    world: SimulationOptions,
    analyst: AnalystOptions | None = None,
    days: tuple[date, date] | None = None,
    name: str = "reviews",
) -> Reviewed:
    """Decide every alert (of alert days in ``days``, inclusive, if given) not decided yet
    and write ``folder/<name>.csv`` for the dispositions feed."""
    a = analyst or AnalystOptions()
    rows = con.execute(
        "SELECT transaction_id, any_value(event_time), any_value(alert_day) FROM alerts "
        "WHERE (?::DATE IS NULL OR alert_day BETWEEN ? AND ?) AND transaction_id NOT IN "
        "(SELECT transaction_id FROM dispositions) GROUP BY 1 ORDER BY 1",
        [days[0] if days else None, days[0] if days else None, days[1] if days else None],
    ).fetchall()
    truth = frauds_of(sorted({d for _, _, d in rows}), seed, world)
    rng = np.random.default_rng([seed, 18])
    out = ["transaction_id,disposition,analyst,reviewed_at,note"]
    confirmed = cleared = unreachable = right = 0
    for tid, event_time, _ in rows:
        fraud = tid in truth
        delay = timedelta(hours=float(rng.uniform(*a.delay_hours)))
        who = a.names[int(rng.integers(0, len(a.names)))]
        if rng.random() < a.unreachable_rate:
            decision = "unreachable"
            unreachable += 1
        else:
            says = (rng.random() >= a.miss_rate) if fraud else (rng.random() < a.false_alarm_rate)
            decision = "confirmed_fraud" if says else "legitimate"
            confirmed += says
            cleared += not says
            right += says == fraud
        out.append(f"{tid},{decision},{who},{event_time + delay:%Y-%m-%d %H:%M:%S},")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    tmp = folder / f".{name}.csv.tmp"
    tmp.write_text("\n".join(out) + "\n")
    tmp.replace(path)  # land atomically
    return Reviewed(path, len(rows), confirmed, cleared, unreachable, right)
