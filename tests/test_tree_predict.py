"""Scores from the compiled trees (jobs/tree_predict.py) against LightGBM's own predict, bit
for bit: real models trained here on small data, each missing-value type, categorical
splits over more than 32 categories, single-leaf trees, early stopping, a model read back
from its text as the registry does; inputs at every edge LightGBM treats specially."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pytest

from jobs.loaded_model import load_version
from jobs.loaded_model import predict as predict_model
from jobs.model_inputs import InferencePolicy
from jobs.tree_predict import compile_booster, compile_text, predict
from registry import Lineage, Registry

N = 3000
BASE = {"objective": "binary", "verbosity": -1, "seed": 7, "num_threads": 1, "num_leaves": 15}


def _data(seed: int = 0, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """Four columns: with NaNs, mostly zeros, plain, and a category code (0-59)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    a[rng.random(n) < 0.2] = np.nan
    z = np.where(rng.random(n) < 0.5, 0.0, rng.normal(2, 1, n))
    b = rng.normal(size=n)
    cat = rng.integers(0, 60, n).astype(float)
    risky = np.isin(cat, [3, 17, 33, 41, 58])
    logit = 1.5 * np.nan_to_num(a, nan=1.0) + (z == 0) - b + 2.5 * risky - 2
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return np.column_stack([a, z, b, cat]), y


def _edges(model: lgb.Booster, x: np.ndarray) -> np.ndarray:
    """Rows that sit where LightGBM's rules differ from a plain ``<=``: every split's own
    threshold, NaN, infinities, signed zeros, values under 1e-35 and float32 denormals;
    for the category, codes unseen, negative, fractional, past int's range and NaN."""
    thresholds = [
        float(t)
        for line in model.model_to_string().splitlines()
        if line.startswith("threshold=")
        for t in line.split("=", 1)[1].split()
    ]
    special = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-36, -1e-36, 1e-40, 1.1e-35, -0.5]
    cats = [np.nan, -1.0, -0.5, -1e-36, 0.7, 3.0, 33.9, 59.0, 60.0, 1000.0, 3e9, np.inf]
    rng = np.random.default_rng(1)
    rows = x[rng.integers(0, len(x), 400)].copy()
    values = np.array(thresholds + special)
    for col in range(3):
        rows[:, col] = rng.choice(values, len(rows))
    rows[:, 3] = rng.choice(np.array(cats + [float(c) for c in range(60)]), len(rows))
    return np.vstack([x, rows])


def _same(model: lgb.Booster, x: np.ndarray, threads: int = 2) -> None:
    trees, why = compile_booster(model)
    assert trees is not None, why
    ours = predict(trees, x, threads)
    theirs = model.predict(x, num_threads=1)
    assert ours.dtype == np.float64 and ours.shape == theirs.shape
    differ = np.flatnonzero(ours != theirs)
    assert differ.size == 0, f"{differ.size} rows differ, first {x[differ[0]]}"


@pytest.mark.parametrize(
    "params",
    [
        {},  # NaN as missing
        {"zero_as_missing": True},  # zero as missing
        {"use_missing": False},  # no missing type
        {"max_cat_to_onehot": 64},  # one category against the rest
        {"max_cat_threshold": 64, "cat_smooth": 1, "min_data_per_group": 5},  # many-vs-many
        {"num_leaves": 4},  # small trees: some split on the category, some do not
        {"num_leaves": 4, "use_missing": False},
    ],
    ids=["nan", "zero", "none", "one-hot", "many-vs-many", "small-nan", "small-none"],
)
def test_scores_are_lightgbms_bit_for_bit(params: dict) -> None:
    x, y = _data()
    data = lgb.Dataset(x, y, categorical_feature=[3], free_raw_data=False)
    model = lgb.train({**BASE, **params}, data, 40)
    text = model.model_to_string()
    assert "decision_type=" in text
    edges = _edges(model, x)
    for matrix in (
        edges.astype(np.float32),
        np.asfortranarray(edges.astype(np.float32)),  # as scoring encodes it
        edges,  # float64 as it is
    ):
        _same(model, matrix)
    _same(model, np.nan_to_num(x * 3).round().astype(np.int64))  # other dtypes: as float32
    whole = len(edges) - len(edges) % 8 - 8  # rows the eight-row walk takes eight at a time
    for tail in range(1, 8):  # and 1 to 7 rows past them, walked row by row
        _same(model, edges[: whole + tail])


def test_the_models_of_this_test_split_on_categories_and_send_missing_both_ways() -> None:
    """The test above means something only if its models have such splits."""
    x, y = _data()
    data = lgb.Dataset(x, y, categorical_feature=[3], free_raw_data=False)
    text = lgb.train({**BASE, "max_cat_threshold": 64}, data, 40).model_to_string()
    kinds = {int(k) for line in text.splitlines() if line.startswith("decision_type=")
             for k in line.split("=")[1].split()}  # fmt: skip
    assert 1 in {k & 1 for k in kinds}  # categorical
    assert {0, 1} <= {(k >> 1) & 1 for k in kinds}  # missing sent right, and left
    assert 2 in {(k >> 2) & 3 for k in kinds}  # NaN as missing
    assert any(
        int(w) >= 2
        for line in text.splitlines()
        if line.startswith("cat_boundaries=")
        for w in np.diff([int(v) for v in line.split("=")[1].split()])
    )  # a set of categories over more than one 32-bit word


@pytest.mark.parametrize(
    ("params", "plain"),
    [
        ({"num_leaves": 4}, {0, 1}),
        ({"num_leaves": 4, "use_missing": False}, {0, 1}),
        ({"num_leaves": 4, "zero_as_missing": True}, {0}),
    ],
    ids=["small-nan", "small-none", "small-zero"],
)
def test_trees_of_plain_splits_take_the_eight_row_walk_and_others_the_row_walk(
    params: dict, plain: set[int]
) -> None:
    """The kernel walks eight rows at once through a tree of plain numerical splits only, and
    row by row through a tree with a category or zero-as-missing split: the test above
    compares both walks only if its models have both kinds of tree."""
    x, y = _data()
    model = lgb.train({**BASE, **params}, lgb.Dataset(x, y, categorical_feature=[3]), 40)
    trees, why = compile_booster(model)
    assert trees is not None, why
    assert set(trees.plain.tolist()) == plain


def test_nan_goes_as_zero_at_a_split_on_zero_with_no_missing_type() -> None:
    """A split with no missing type reads NaN as 0, so at a threshold of exactly 0 a NaN goes
    left: thresholds are set to 0 in a trained model's text, as LightGBM reads it back."""
    x, y = _data()
    model = lgb.train({**BASE, "num_leaves": 4, "use_missing": False}, lgb.Dataset(x, y), 10)
    lines = model.model_to_string().splitlines()
    text = (
        "\n".join(
            "threshold=" + " ".join("0" for _ in line.split("=", 1)[1].split())
            if line.startswith("threshold=")
            else line
            for line in lines
            if not line.startswith("tree_sizes=")  # the trees' lengths in bytes: changed here
        )
        + "\n"
    )
    again = lgb.Booster(model_str=text)
    trees, why = compile_text(text)
    assert trees is not None, why
    assert (trees.threshold == 0).all() and trees.nan_left.all() and trees.plain.all()
    rows = np.array([[v] * 4 for v in (np.nan, 0.0, -0.0, 1e-36, -1.0, 1.0, np.nan, 2.0)])
    assert np.array_equal(predict(trees, rows, 1), again.predict(rows))


def test_early_stopping_scores_with_the_best_iteration_as_predict_does() -> None:
    x, y = _data()
    valid_x, valid_y = _data(seed=5)
    train = lgb.Dataset(x, y, categorical_feature=[3])
    valid = lgb.Dataset(valid_x, valid_y, reference=train)
    model = lgb.train(
        {**BASE, "learning_rate": 0.5},
        train,
        300,
        valid_sets=[valid],
        callbacks=[lgb.early_stopping(5, verbose=False)],
        keep_training_booster=True,  # else train() keeps only the best iteration's trees
    )
    assert 0 < model.best_iteration < model.num_trees()
    _same(model, _edges(model, x))


def test_a_model_read_back_from_its_text_and_single_leaf_trees() -> None:
    x, y = _data()
    stump = lgb.train({**BASE, "min_data_in_leaf": N}, lgb.Dataset(x, y), 5)  # cannot split
    assert "num_leaves=1" in stump.model_to_string()
    _same(stump, x)
    model = lgb.train(BASE, lgb.Dataset(x, y, categorical_feature=[3]), 30)
    text = model.model_to_string()
    again = lgb.Booster(model_str=text)  # as the registry loads a version
    trees, why = compile_text(text)
    assert trees is not None, why
    assert np.array_equal(predict(trees, x, 1), again.predict(x))


def test_many_rows_on_two_threads_or_every_core_equal_one_thread() -> None:
    x, y = _data(n=60_000)
    model = lgb.train(BASE, lgb.Dataset(x, y, categorical_feature=[3]), 20)
    trees, _ = compile_booster(model)
    assert trees is not None
    one, two, every = predict(trees, x, 1), predict(trees, x, 2), predict(trees, x, 0)
    assert np.array_equal(one, two) and np.array_equal(one, every)
    assert np.array_equal(two, model.predict(x))


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"objective": "multiclass", "num_class": 3}, "objective 'multiclass"),
        ({"objective": "regression"}, "objective 'regression'"),
        ({"linear_tree": True}, "linear trees"),
        (
            {"boosting": "rf", "bagging_fraction": 0.5, "bagging_freq": 1},
            "averaged trees (random forest)",
        ),
    ],
    ids=["multiclass", "regression", "linear", "random-forest"],
)
def test_models_it_cannot_reproduce_are_left_to_lightgbm(params: dict, why: str) -> None:
    x, y = _data()
    if params.get("objective") == "multiclass":
        y = y + (x[:, 2] > 1)
    model = lgb.train({**BASE, **params}, lgb.Dataset(np.nan_to_num(x), y), 5)
    trees, reason = compile_booster(model)
    assert trees is None
    assert why in reason


def test_a_model_text_of_another_version_or_form_is_refused_not_raised() -> None:
    x, y = _data()
    text = lgb.train(BASE, lgb.Dataset(x, y), 5).model_to_string()
    assert compile_text(text.replace("version=v4", "version=v5", 1)) == (
        None,
        "model file version 'v5' (v4 is compiled)",
    )
    trees, why = compile_text(text.replace("leaf_value=", "leaf_values=", 1))
    assert trees is None and why.startswith("model text not understood (KeyError")


def test_a_matrix_of_the_wrong_width_is_refused() -> None:
    x, y = _data()
    trees, _ = compile_booster(lgb.train(BASE, lgb.Dataset(x, y), 5))
    assert trees is not None
    with pytest.raises(ValueError, match=r"takes 4 features; the matrix has shape \(3000, 3\)"):
        predict(trees, x[:, :3], 1)


def _registered(tmp_path: Path, objective: str) -> tuple[Registry, int, lgb.Booster]:
    x, y = _data()
    params = {**BASE, "objective": objective}
    booster = lgb.train(params, lgb.Dataset(x, y, categorical_feature=[3]), 20)
    reg = Registry(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "artifacts")
    lineage = Lineage(
        training_start=datetime(2026, 1, 1),
        training_end=datetime(2026, 2, 1),
        rows=N,
        fraud_rate=float(y.mean()),
        fingerprint="f" * 64,
        feature_names=["a", "z", "b", "channel"],
        categorical_features=["channel"],
        categorical_vocab={"channel": [f"c{i}" for i in range(60)]},
    )
    info = reg.register_version("fraud", booster.model_to_string(), lineage)
    return reg, info.version, booster


def _table(x: np.ndarray) -> pa.Table:
    codes = [None if np.isnan(c) else f"c{int(c)}" for c in x[:, 3]]
    codes[:5] = ["unheard-of", None, "c3", "c59", "C3"]
    return pa.table({"a": x[:, 0], "z": x[:, 1], "b": x[:, 2], "channel": codes})


def test_a_registry_version_scores_through_the_compiled_trees(tmp_path: Path) -> None:
    reg, version, booster = _registered(tmp_path, "binary")
    model = load_version(reg, "fraud", version, "champion")
    assert model.trees is not None
    x, _ = _data(seed=9)
    scores, matrix = predict_model(model, _table(x), InferencePolicy(), 2)
    assert np.isnan(matrix[:5, 3]).tolist() == [True, True, False, False, True]
    assert np.array_equal(scores, booster.predict(matrix))


def test_a_version_it_cannot_compile_is_scored_by_lightgbm_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg, version, booster = _registered(tmp_path, "cross_entropy")
    with caplog.at_level(logging.INFO, logger="fraudwatch.scoring"):
        model = load_version(reg, "fraud", version, "challenger")
    assert model.trees is None
    [said] = [r for r in caplog.records if r.getMessage() == "model scored by LightGBM's predict"]
    assert "only binary is compiled" in str(said.__dict__)
    x, _ = _data(seed=9)
    scores, matrix = predict_model(model, _table(x), InferencePolicy(), 2)
    assert np.array_equal(scores, booster.predict(matrix))
