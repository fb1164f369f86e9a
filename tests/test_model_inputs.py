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
