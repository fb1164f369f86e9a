"""One conversion from features to the model's matrix, with the inference policy applied."""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from jobs.model_inputs import InferencePolicy, apply_policy, build_vocab, encode, medians


def test_encode_numeric_and_categorical_with_training_vocabulary() -> None:
    train = pl.DataFrame({"amount": [1.0, 2.0, None], "channel": ["pos", "atm", "pos"]})
    vocab = build_vocab(train, ["channel"])
    assert vocab == {"channel": ["atm", "pos"]}
    live = pl.DataFrame({"amount": [5.0, None], "channel": ["pos", "kiosk"]})
    x = encode(live, ["amount", "channel"], ["channel"], vocab)
    assert x.dtype == np.float32 and x.flags.c_contiguous  # what LightGBM takes, no copy
    assert x[0].tolist() == [5.0, 1.0]
    assert math.isnan(x[1, 0]) and math.isnan(x[1, 1])  # unseen category -> missing


def test_policies_fill_missing_without_a_new_model() -> None:
    names = ["a", "b"]
    x = np.array([[1.0, np.nan], [np.nan, 4.0], [3.0, 6.0]])
    med = medians(x, names)
    assert med == {"a": 2.0, "b": 5.0}
    native = apply_policy(x.copy(), names, InferencePolicy())
    assert np.isnan(native).sum() == 2
    zero = apply_policy(x.copy(), names, InferencePolicy(missing="zero"))
    assert zero[0, 1] == 0.0 and zero[1, 0] == 0.0
    ref = apply_policy(x.copy(), names, InferencePolicy(missing="reference_median"), med)
    assert ref[0, 1] == 5.0 and ref[1, 0] == 2.0
    explicit = apply_policy(x.copy(), names, InferencePolicy(missing="zero", fill={"b": -1.0}))
    assert explicit[0, 1] == -1.0 and explicit[1, 0] == 0.0
    assert InferencePolicy(missing="zero", fill={"b": -1.0}).to_dict() == {
        "missing": "zero",
        "fill": {"b": -1.0},
    }


def test_scoring_layout_has_training_values_bit_for_bit() -> None:
    """Scoring encodes column-major from Arrow, training row-major from polars: the same
    float32 bits as a polars cast (how models were trained before), whatever the type."""
    big = 2**24 + 1  # not a float32: rounds to the nearest, in both layouts
    frame = pl.DataFrame(
        {
            "i64": [big, -big, 3, None],
            "i32": pl.Series([7, None, -2, 2**30 + 1], dtype=pl.Int32),
            "u32": pl.Series([0, 1, None, 2**32 - 1], dtype=pl.UInt32),
            "f64": [0.1, float("nan"), None, float("inf")],
            "f32": pl.Series([0.5, None, -0.0, 1e-40], dtype=pl.Float32),
            "flag": [True, False, None, True],
            "channel": ["pos", None, "kiosk", "atm"],
        }
    )
    names = frame.columns
    vocab = {"channel": ["atm", "pos"]}
    expected = np.column_stack(
        [
            frame[c].cast(pl.Float32).fill_null(float("nan")).to_numpy()
            for c in names
            if c != "channel"
        ]
        + [np.array([1.0, np.nan, np.nan, 0.0], np.float32)]
    )
    training = encode(frame, names, ["channel"], vocab)
    scoring = encode(frame.to_arrow(), names, ["channel"], vocab, column_major=True)
    assert training.flags.c_contiguous and scoring.flags.f_contiguous
    for got in (training, scoring):
        assert got.dtype == np.float32
        assert got.view(np.int32).tolist() == expected.view(np.int32).tolist()


def test_lightgbm_scores_either_layout_alike() -> None:
    import lightgbm as lgb

    rng = np.random.default_rng(3)
    x = rng.normal(size=(2_000, 4)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    y = (np.nan_to_num(x[:, 0]) + rng.normal(size=2_000) > 0.5).astype(int)
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 7},
        lgb.Dataset(x, y),
        num_boost_round=20,
    )
    frame = pl.DataFrame({f"f{i}": x[:, i] for i in range(4)})
    names = frame.columns
    rows = encode(frame, names, [], {})
    columns = encode(frame.to_arrow(), names, [], {}, column_major=True)
    assert np.array_equal(booster.predict(rows), booster.predict(columns))
