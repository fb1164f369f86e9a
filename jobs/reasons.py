"""Alert reasons: the features that pushed a row's score up most, in an analyst's words.

LightGBM's per-row feature contributions (``pred_contrib``, TreeSHAP) name them.
They cost a few milliseconds a row for a 300-tree model, so scoring asks for
them only for the rows the alert policy turns into alerts (:func:`explainer`).

Each reason says the size and the direction of what is unusual, against the
card's or merchant's own history in the same row, or against the training
median: "amount 1,240.00 is 8.3x the card's 30-day mean (149.40)", "14
transactions on the card in 1 day, 9.5x its daily rate over 30 days", "only 42 s
after the card's previous transaction", rather than raw values ("hour of day:
2"). :func:`phrase` is pure, so every wording is tested on plain numbers.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import polars as pl

    from jobs.loaded_model import LoadedModel

_WINDOW = re.compile(r"^(card|merchant)_(\w+?)_(\d+)d$")


def _num(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.2f}"


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _times(ratio: float) -> str:
    return f"{ratio:.1f}x" if ratio < 100 else f"{ratio:,.0f}x"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} days"


def _known(row: Mapping[str, float], name: str) -> float | None:
    value = row.get(name)
    return None if value is None or math.isnan(value) else float(value)


def _longest(row: Mapping[str, float], prefix: str) -> tuple[int, float] | None:
    """The longest window ``w`` with a known ``<prefix>_<w>d`` in the row, and its value."""
    found = []
    for key in row:
        m = _WINDOW.match(key)
        if m and key.startswith(prefix + "_") and f"{m[1]}_{m[2]}" == prefix:
            value = _known(row, key)
            if value is not None:
                found.append((int(m[3]), value))
    return max(found) if found else None


def _against_rate(count: float, w: int, row: Mapping[str, float], prefix: str) -> str:
    """', 9.5x its daily rate over 30 days' when a longer window of the same count is known."""
    longest = _longest(row, prefix)
    if longest is None or longest[0] <= w or longest[1] <= 0:
        return ""
    per_day = longest[1] / longest[0]
    return f", {_times(count / (w * per_day))} its daily rate over {longest[0]} days"


def phrase(
    name: str,
    value: float,
    row: Mapping[str, float],
    descriptions: Mapping[str, str],
    medians: Mapping[str, float] | None = None,
    category: str | None = None,
) -> str:
    """One feature's value in words, with its size against a reference and its direction.

    ``row`` holds the same transaction's other inputs by name (so the amount can be set
    against the card's mean); ``medians`` the training medians; ``category`` the decoded
    value of a categorical input."""
    desc = descriptions.get(name, name.replace("_", " "))
    if category is not None:
        return f"{desc} {category!r}"
    if math.isnan(value):
        if name == "card_seconds_since_prev":
            return "the card's first transaction in its history window"
        return f"{desc} missing"
    if name == "amount":
        ratio = _longest(row, "card_amount_ratio")
        if ratio is not None:
            w, r = ratio
            mean = _known(row, f"card_mean_amount_{w}d")
            of_mean = f" ({_money(mean)})" if mean is not None else ""
            return f"amount {_money(value)} is {_times(r)} the card's {w}-day mean{of_mean}"
        return f"amount {_money(value)}" + _against_median(name, value, medians, _money)
    if name == "hour":
        return f"made at {int(value):02d}:00-{int(value):02d}:59"
    if name == "is_night":
        return f"made {desc}" if value else f"made outside the night hours ({desc})"
    if name == "is_weekend":
        return "made on a weekend" if value else "made on a weekday"
    if name == "card_seconds_since_prev":
        if value == 0:
            return "at the same instant as another transaction on the card"
        return f"only {_duration(value)} after the card's previous transaction"
    m = _WINDOW.match(name)
    if m:
        who, what, w = m[1], m[2], int(m[3])
        days = f"{w} day" + ("s" if w != 1 else "")
        if who == "card" and what == "amount_ratio":
            amount = _known(row, "amount")
            mean = _known(row, f"card_mean_amount_{w}d")
            of = f"amount {_money(amount)}" if amount is not None else "amount"
            of_mean = f" ({_money(mean)})" if mean is not None else ""
            return f"{of} is {_times(value)} the card's {w}-day mean{of_mean}"
        if who == "card" and what == "mean_amount":
            amount = _known(row, "amount")
            vs = f" (this amount is {_times(amount / value)} it)" if amount and value > 0 else ""
            return f"the card's {w}-day mean amount is {_money(value)}{vs}"
        if what == "tx_count":
            owner = "the card" if who == "card" else "the merchant"
            rate = _against_rate(value, w, row, f"{who}_tx_count")
            return f"{_num(value)} transactions on {owner} in {days}{rate}"
        if who == "card" and what == "distinct_merchants":
            return f"the card used {_num(value)} different merchants in {days}"
        if who == "merchant" and what == "fraud_rate":
            return f"{desc} is {value:.1%}"
    return f"{desc} {_num(value)}" + _against_median(name, value, medians)


def _against_median(
    name: str,
    value: float,
    medians: Mapping[str, float] | None,
    fmt: Callable[[float], str] = _num,
) -> str:
    median = (medians or {}).get(name)
    if median is None or not math.isfinite(median) or median <= 0 or value < 0:
        return ""
    return f", {_times(value / median)} the training median ({fmt(median)})"


def top_reasons(
    model: LoadedModel,
    x: np.ndarray,
    descriptions: Mapping[str, str],
    threads: int,
    n: int = 3,
) -> list[list[str]]:
    """The ``n`` features pushing each row's score up most, as readable phrases."""
    if x.shape[0] == 0:
        return []
    contrib = np.asarray(model.booster.predict(x, pred_contrib=True, num_threads=threads))
    contrib = contrib[:, : len(model.features)]  # last column is the bias
    out: list[list[str]] = []
    for i in range(x.shape[0]):  # only the rows that become alerts: the budget's few
        row = dict(zip(model.features, (float(v) for v in x[i]), strict=True))
        reasons: list[str] = []
        topics: set[str] = set()
        for j in np.argsort(-contrib[i]):
            if contrib[i, j] <= 0 or len(reasons) == n:
                break
            name = model.features[j]
            if topic(name) in topics:
                continue  # the amount against the card's mean is said once
            topics.add(topic(name))
            category = (
                _category(model.vocab.get(name), x[i, j]) if name in model.categorical else None
            )
            reasons.append(phrase(name, float(x[i, j]), row, descriptions, model.medians, category))
        out.append(reasons)
    return out


def topic(name: str) -> str:
    """What a reason is about: the amount and its ratios to the card's means are one."""
    if name == "amount" or name.startswith(("card_amount_ratio_", "card_mean_amount_")):
        return "amount"
    return name


def _category(vocab: Sequence[str] | None, value: float) -> str | None:
    if math.isnan(value):
        return None  # phrased as missing
    idx = int(value)
    return str(vocab[idx]) if vocab is not None and 0 <= idx < len(vocab) else "an unseen value"


def explainer(
    model: LoadedModel,
    candidates: pl.DataFrame,
    x: np.ndarray,
    descriptions: Mapping[str, str],
    threads: int,
) -> Callable[[list[str]], list[str]]:
    """The reasons (JSON) of the candidates the alert policy picks, by transaction id.

    Per-row contributions cost a few milliseconds a row for a 300-tree model, and the
    daily budget lets few of the rows above the threshold become alerts, so only those
    are explained (``x`` holds the candidates' model inputs, in the same order).
    """
    row = {tid: i for i, tid in enumerate(candidates["transaction_id"].to_list())}

    def explain(ids: list[str]) -> list[str]:
        picked = x[[row[tid] for tid in ids]]
        return [json.dumps(r) for r in top_reasons(model, picked, descriptions, threads)]

    return explain
