"""The simulator's card and merchant profiles and its fraud patterns.

Each pattern is a pure function of ``(seed, day)`` and the profiles; episodes
that span several days are re-derived from the day they started, so any day
can be generated on its own.

- ``large_amount``: a card's amount several times its usual one, often
  online; legit cards make big purchases too, so it is not a giveaway;
- ``compromised_merchant``: a merchant leaks card data for some days; its
  regular customers are defrauded in the following days, online and at
  unfamiliar merchants;
- ``compromised_card``: a burst of transactions over one to three days, far
  from home, at merchants the card never used;
- ``compromised_terminal``: a merchant's terminal is compromised (or the
  merchant is a front) for one to four weeks, and a large share of *its own*
  transactions in that time are fraudulent, at ordinary amounts and hours: only
  the merchant's history of chargebacks gives it away, and those arrive with the
  label delay (:func:`compromised_terminals`, applied to the day's rows);
- ``card_testing`` (the new pattern, from ``new_pattern_start``): quick bursts
  of tiny online amounts at night, at merchants that change every episode;
- the camouflage shift (from ``camouflage_start``, :func:`camouflage`): most frauds mimic
  their card's habits (a home merchant, daytime, about the usual amount), which the model,
  trained on the old patterns, scores lower and less surely.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl

PATTERNS = (
    "large_amount",
    "compromised_merchant",
    "compromised_card",
    "compromised_terminal",
    "card_testing",
)
TERMINAL_EPISODE_DAYS = (7, 28)  # shortest and longest compromise
HOME_MERCHANTS = 5


@dataclass(frozen=True)
class Profiles:
    n_cards: int
    n_merchants: int
    rate: np.ndarray  # per-card activity multiplier
    log_amount: np.ndarray  # per-card log of the typical amount
    online_share: np.ndarray
    card_xy: np.ndarray  # home location, km
    home_merchants: np.ndarray  # (n_cards, HOME_MERCHANTS)
    merchant_xy: np.ndarray
    merchant_channel: np.ndarray  # 'pos' or 'atm'


def make_profiles(seed: int, n_cards: int, n_merchants: int) -> Profiles:
    rng = np.random.default_rng([seed, 0])
    card_xy = rng.uniform(0, 500, (n_cards, 2))
    merchant_xy = rng.uniform(0, 500, (n_merchants, 2))
    # home merchants: the nearest-ish merchants, chosen among a random sample
    home = np.empty((n_cards, HOME_MERCHANTS), dtype=np.int64)
    for start in range(0, n_cards, 512):  # blocks of cards, not rows
        block = card_xy[start : start + 512]
        d = np.hypot(
            block[:, None, 0] - merchant_xy[None, :, 0], block[:, None, 1] - merchant_xy[None, :, 1]
        )
        d = d * rng.uniform(0.5, 1.5, d.shape)
        home[start : start + 512] = np.argsort(d, axis=1)[:, :HOME_MERCHANTS]
    return Profiles(
        n_cards=n_cards,
        n_merchants=n_merchants,
        rate=rng.gamma(2.0, 0.5, n_cards),
        log_amount=rng.normal(np.log(38.0), 0.6, n_cards),
        online_share=rng.beta(2, 6, n_cards),
        card_xy=card_xy,
        home_merchants=home,
        merchant_xy=merchant_xy,
        merchant_channel=np.where(rng.random(n_merchants) < 0.93, "pos", "atm"),
    )


def _frame(
    card: np.ndarray,
    merchant: np.ndarray,
    second: np.ndarray,
    amount: np.ndarray,
    channel: np.ndarray,
    distance: np.ndarray,
    pattern: str,
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "card": card.astype(np.int64),
            "merchant": merchant.astype(np.int64),
            "second": np.clip(second, 0, 86399).astype(np.int64),
            "amount": amount.astype(np.float64),
            "channel": channel.astype(str),
            "distance_km": distance.astype(np.float64),
            "pattern": np.full(card.size, pattern).astype(str),
        }
    )


def _night_seconds(rng: np.random.Generator, n: int, night_share: float) -> np.ndarray:
    night = rng.random(n) < night_share
    hour = np.where(night, rng.integers(0, 5, n), rng.integers(7, 23, n))
    return hour * 3600 + rng.integers(0, 3600, n)


def _distance(p: Profiles, card: np.ndarray, merchant: np.ndarray) -> np.ndarray:
    return np.hypot(
        p.card_xy[card, 0] - p.merchant_xy[merchant, 0],
        p.card_xy[card, 1] - p.merchant_xy[merchant, 1],
    )


def large_amount(p: Profiles, day: date, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng([seed, day.toordinal(), 21])
    n = rng.poisson(p.n_cards * 0.003)
    card = rng.integers(0, p.n_cards, n)
    merchant = rng.integers(0, p.n_merchants, n)
    online = rng.random(n) < 0.55
    amount = np.exp(p.log_amount[card] + rng.normal(0, 0.5, n)) * rng.uniform(2.5, 12, n)
    dist = np.where(online, rng.exponential(40, n), _distance(p, card, merchant))
    channel = np.where(online, "online", p.merchant_channel[merchant])
    return _frame(
        card, merchant, _night_seconds(rng, n, 0.3), amount, channel, dist, "large_amount"
    )


def compromised_merchant(p: Profiles, day: date, seed: int) -> pl.DataFrame:
    parts = []
    for lag in range(1, 11):  # episodes that started up to ten days ago
        start = day - timedelta(days=lag)
        rng = np.random.default_rng([seed, start.toordinal(), 22])
        if rng.random() >= 0.6:
            continue
        leaking = rng.integers(0, p.n_merchants)
        customers = np.flatnonzero((p.home_merchants == leaking).any(axis=1))
        victims = customers[rng.random(customers.size) < 0.8]
        fraud_lag = rng.integers(1, 11, victims.size)  # the day each victim is hit
        count = rng.integers(1, 4, victims.size)
        hit = victims[fraud_lag == lag]
        k = count[fraud_lag == lag]
        if hit.size == 0:
            continue
        rng_day = np.random.default_rng([seed, start.toordinal(), day.toordinal(), 23])
        card = np.repeat(hit, k)
        n = card.size
        merchant = rng_day.integers(0, p.n_merchants, n)
        online = rng_day.random(n) < 0.7
        amount = np.exp(p.log_amount[card] + rng_day.normal(0.4, 0.6, n)) * rng_day.uniform(1, 4, n)
        dist = np.where(online, rng_day.exponential(60, n), _distance(p, card, merchant))
        channel = np.where(online, "online", p.merchant_channel[merchant])
        seconds = _night_seconds(rng_day, n, 0.25)
        parts.append(_frame(card, merchant, seconds, amount, channel, dist, "compromised_merchant"))
    return pl.concat(parts) if parts else _empty()


def compromised_card(p: Profiles, day: date, seed: int) -> pl.DataFrame:
    parts = []
    for lag in range(0, 3):
        start = day - timedelta(days=lag)
        rng = np.random.default_rng([seed, start.toordinal(), 24])
        cards = rng.integers(0, p.n_cards, rng.poisson(p.n_cards * 0.0008))
        duration = rng.integers(1, 4, cards.size)
        active = cards[duration > lag]
        if active.size == 0:
            continue
        rng_day = np.random.default_rng([seed, start.toordinal(), day.toordinal(), 25])
        k = rng_day.integers(2, 7, active.size)
        card = np.repeat(active, k)
        n = card.size
        burst_start = np.repeat(_night_seconds(rng_day, active.size, 0.45), k)
        seconds = burst_start + rng_day.integers(0, 4 * 3600, n)
        merchant = rng_day.integers(0, p.n_merchants, n)
        online = rng_day.random(n) < 0.4
        amount = np.exp(p.log_amount[card] + rng_day.normal(0.7, 0.7, n))
        far = rng_day.exponential(250, n) + 50
        dist = np.where(online, rng_day.exponential(80, n), _distance(p, card, merchant) + far)
        channel = np.where(online, "online", p.merchant_channel[merchant])
        parts.append(_frame(card, merchant, seconds, amount, channel, dist, "compromised_card"))
    return pl.concat(parts) if parts else _empty()


def compromised_terminals(
    p: Profiles, day: date, seed: int, rate: float = 0.0003
) -> dict[int, float]:
    """The merchants compromised on ``day`` and the share of their transactions that are
    fraudulent. Each day ``rate`` of the merchants (on average) start an episode of one to
    four weeks: about half a percent of merchants are compromised at any time."""
    active: dict[int, float] = {}
    lo, hi = TERMINAL_EPISODE_DAYS
    for lag in range(hi):
        start = day - timedelta(days=lag)
        rng = np.random.default_rng([seed, start.toordinal(), 27])
        for _ in range(rng.poisson(p.n_merchants * rate)):
            merchant = int(rng.integers(0, p.n_merchants))
            duration = int(rng.integers(lo, hi + 1))
            share = float(rng.uniform(0.3, 0.8))
            if lag < duration:
                active[merchant] = max(active.get(merchant, 0.0), share)
    return active


def card_testing(p: Profiles, day: date, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng([seed, day.toordinal(), 26])
    cards = rng.integers(0, p.n_cards, rng.poisson(p.n_cards * 0.0015))
    if cards.size == 0:
        return _empty()
    k = rng.integers(3, 10, cards.size)
    card = np.repeat(cards, k)
    n = card.size
    start = np.repeat(rng.integers(0, 5 * 3600, cards.size), k)
    seconds = start + rng.integers(0, 1800, n)
    merchant = np.repeat(rng.integers(0, p.n_merchants, cards.size), k)
    amount = rng.uniform(0.5, 4.0, n)
    dist = rng.exponential(30, n)
    channel = np.full(n, "online")
    return _frame(card, merchant, seconds, amount, channel, dist, "card_testing")


def _empty() -> pl.DataFrame:
    e = np.array([], dtype=np.int64)
    f = np.array([], dtype=np.float64)
    return _frame(e, e, e, f, np.array([], dtype=str), f, "")


def day_frauds(p: Profiles, day: date, seed: int, new_pattern_start: date | None) -> pl.DataFrame:
    parts = [
        large_amount(p, day, seed),
        compromised_merchant(p, day, seed),
        compromised_card(p, day, seed),
    ]
    if new_pattern_start is not None and day >= new_pattern_start:
        parts.append(card_testing(p, day, seed))
    return pl.concat(parts, how="vertical_relaxed")


def camouflage(
    p: Profiles, frauds: pl.DataFrame, day: date, seed: int, share: float
) -> pl.DataFrame:
    """The fraud-pattern shift (``camouflage_start``): fraudsters learn the cards' habits, and
    ``share`` of the day's frauds happen at one of the card's home merchants, in the daytime,
    at about its usual amount, in person. Features built for the old patterns see little:
    the model scores them lower and less surely, and misses many (issue 18's proof that an
    estimate moves before labels arrive)."""
    if frauds.height == 0 or share <= 0:
        return frauds
    rng = np.random.default_rng([seed, day.toordinal(), 27])
    n = frauds.height
    hit = rng.random(n) < share
    card = frauds["card"].to_numpy()
    merchant = p.home_merchants[card, rng.integers(0, HOME_MERCHANTS, n)]
    amount = np.exp(p.log_amount[card] + rng.normal(0, 0.45, n))
    second = rng.integers(9 * 3600, 19 * 3600, n)
    return frauds.with_columns(
        pl.Series("merchant", np.where(hit, merchant, frauds["merchant"].to_numpy())),
        pl.Series("amount", np.where(hit, amount, frauds["amount"].to_numpy())),
        pl.Series("second", np.where(hit, second, frauds["second"].to_numpy())),
        pl.Series(
            "channel",
            np.where(hit, p.merchant_channel[merchant], frauds["channel"].to_numpy()).astype(str),
        ),
        pl.Series(
            "distance_km",
            np.where(hit, _distance(p, card, merchant), frauds["distance_km"].to_numpy()),
        ),
    )
