"""Alert reasons: the features that pushed a row's score up most, in an analyst's words.

LightGBM's per-row feature contributions (``pred_contrib``, TreeSHAP) name them.
They cost a few milliseconds a row for a 300-tree model, so scoring asks for
them only for the rows the alert policy turns into alerts (:func:`explainer`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from jobs.scoring import LoadedModel


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
    order = np.argsort(-contrib, axis=1)[:, :n]
    out: list[list[str]] = []
    for i in range(x.shape[0]):  # only the rows that become alerts: the budget's few
        reasons = []
        for j in order[i]:
            if contrib[i, j] <= 0:
                break
            name = model.features[j]
            reasons.append(f"{descriptions.get(name, name)}: {_fmt(model, name, x[i, j])}")
        out.append(reasons)
    return out


def _fmt(model: LoadedModel, name: str, value: float) -> str:
    if np.isnan(value):
        return "missing"
    if name in model.categorical:
        vocab = model.vocab.get(name, [])
        idx = int(value)
        return str(vocab[idx]) if 0 <= idx < len(vocab) else "unseen value"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


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
