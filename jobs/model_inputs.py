"""Feature table -> model input matrix: one conversion for training and scoring alike.

Numeric features become float32 (missing stays NaN, which LightGBM handles
natively); categorical features are encoded with the vocabulary learnt at
training time and stored with the model version (sorted values -> 0..n-1;
a value unseen in training becomes missing). The inference policy
(``[scoring] missing`` and ``fill``) is applied here, after encoding, and is
kept apart from the model so it can change without a new version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class InferencePolicy:
    """How missing inputs are filled at scoring time; recorded with every run."""

    missing: str = "native"  # native | zero | reference_median
    fill: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"missing": self.missing, "fill": dict(self.fill)}


def build_vocab(frame: pl.DataFrame, categorical: Sequence[str]) -> dict[str, list[str]]:
    """The sorted distinct non-null values of each categorical feature."""
    return {
        c: sorted(str(v) for v in frame[c].drop_nulls().unique().to_list()) for c in categorical
    }


def to_frame(table: pa.Table | pl.DataFrame) -> pl.DataFrame:
    if isinstance(table, pl.DataFrame):
        return table
    out = pl.from_arrow(table)
    assert isinstance(out, pl.DataFrame)
    return out


def encode(
    table: pa.Table | pl.DataFrame,
    names: Sequence[str],
    categorical: Sequence[str],
    vocab: Mapping[str, Sequence[str]],
    *,
    column_major: bool = False,
) -> np.ndarray:
    """The float32 matrix (rows x names) the model takes, for training and scoring alike (so
    both see the same values). Filled one column at a time: peak memory is the matrix plus
    one column, not three copies of it (a frame, a Fortran array, a C array). float32 is
    what LightGBM bins in; counts stay exact up to 16 million.

    Row-major (C order) by default: training slices it by rows. ``column_major`` (scoring)
    writes each column contiguously, which LightGBM predicts from without a copy and with
    the same scores; with numeric columns cast by Arrow from a table (each value rounded to
    the nearest float32, as a polars cast does), 1M rows encode in 0.13-0.15 s instead of
    0.35 s. Categorical columns go through the vocabulary."""
    rows = table.num_rows if isinstance(table, pa.Table) else table.height
    matrix = np.empty((len(names), rows) if column_major else (rows, len(names)), np.float32)
    for i, name in enumerate(names):
        values = _column(table, name, name in categorical, vocab)
        if column_major:
            matrix[i] = values
        else:
            matrix[:, i] = values
    return matrix.T if column_major else matrix


def _column(
    table: pa.Table | pl.DataFrame, name: str, categorical: bool, vocab: Mapping[str, Sequence[str]]
) -> np.ndarray:
    """One model input as float32, missing values NaN: by polars from a frame (training's
    chunked frames convert a chunk at a time) and for categories, by an Arrow cast from a
    table (scoring's batches: 2-3x faster); the same bits either way."""
    if isinstance(table, pa.Table) and not categorical:
        as_float = pc.cast(table.column(name), pa.float32(), safe=False)  # safe refuses 2**24+1
        if as_float.null_count:
            as_float = pc.fill_null(as_float, float("nan"))
        return np.asarray(as_float.to_numpy())
    one = table.select([name]) if isinstance(table, pa.Table) else table.select(name)
    column = to_frame(one).get_column(name)
    if categorical:
        mapping = {v: float(j) for j, v in enumerate(vocab.get(name, []))}
        column = column.cast(pl.Utf8).replace_strict(mapping, default=None, return_dtype=pl.Float32)
    return column.cast(pl.Float32).fill_null(float("nan")).to_numpy()


def medians(matrix: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """Per-feature medians of a training matrix, for the ``reference_median`` policy."""
    out: dict[str, float] = {}
    for i, name in enumerate(names):
        col = matrix[:, i]
        col = col[~np.isnan(col)]
        out[name] = float(np.median(col)) if col.size else 0.0
    return out


def apply_policy(
    matrix: np.ndarray,
    names: Sequence[str],
    policy: InferencePolicy,
    reference_medians: Mapping[str, float] | None = None,
) -> np.ndarray:
    """Fill missing inputs per the policy (in place); explicit ``fill`` values win."""
    if policy.missing == "native" and not policy.fill:
        return matrix
    for i, name in enumerate(names):
        value: float | None = None
        if name in policy.fill:
            value = float(policy.fill[name])
        elif policy.missing == "zero":
            value = 0.0
        elif policy.missing == "reference_median" and reference_medians:
            value = reference_medians.get(name)
        if value is not None:
            col = matrix[:, i]
            col[np.isnan(col)] = value
    return matrix
