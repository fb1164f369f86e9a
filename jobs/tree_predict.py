"""A LightGBM model's scores from our own compiled loop over its trees: the same bits as
``Booster.predict``, for less than half its CPU.

Why. A run's predict was a third of its CPU (LightGBM's ``PredictRaw``: 8.9 of 28 CPU-s in
a 1M-row daemon run, ``perf``). LightGBM walks every tree for one row before the next, so
the trees (here 300 of 63 leaves) stream through the cache once per row. The kernel
(:mod:`jobs.tree_kernels`) walks a block of rows through one tree before the next tree, so
a tree stays in the cache for its 2,048 rows, and through a tree of plain numerical splits
it walks eight rows at once. On the champion of ``benchmarks/run.py`` and 1M rows, two
threads, four rounds alternating in one process (a loaded machine): 2.0-2.1 s and 3.9-4.0
CPU-s walking four rows at once, against 2.7-3.3 s and 5.1-5.7 CPU-s walking one row at a
time; LightGBM's predict took 4.9-5.1 s and 9.4-10.0 CPU-s in the same minutes. Eight rows
at once took 16% less CPU than four (2.41 against 2.87 CPU-s, a quieter machine, the
twelfth session). Every score is bit-identical.

What it reproduces (LightGBM 4, ``include/LightGBM/tree.h`` and ``c_api.cpp``):

- the input as LightGBM sees it: float32 and float64 matrices as they are, other dtypes as
  float32; each value as a double, and any ``|v| <= 1e-35f`` as 0 (LightGBM's dense rows
  drop such values and read them back as 0);
- numerical splits: NaN is 0 unless the split's missing type is NaN; a missing value
  (NaN for type NaN, zero for type Zero) goes the split's default way; else ``v <= t``
  goes left;
- categorical splits: NaN, values ``<= -1`` and values past ``int``'s range go right (C++
  casts them to a negative ``int``); else the value truncated to an integer goes left when
  it is in the split's category set;
- the raw score as the sum of the trees' leaf values in tree order, from 0, in doubles;
  then the binary objective's ``1 / (1 + exp(-sigmoid * raw))``;
- the trees ``predict`` uses by default: the best iteration's when the booster has one
  (``model_to_string`` takes the same default).

What it refuses (:func:`compile_booster` returns None with the reason, and the caller
predicts with LightGBM): objectives other than ``binary``, more than one tree per
iteration, random forests (``average_output``), linear trees.

``tests/test_tree_predict.py`` compares every score with LightGBM's, bit for bit, on models
with each missing type, categorical splits, single-leaf trees and early stopping, and
inputs with NaN, infinities, signed zeros, denormals and out-of-range categories.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_ROWS_PER_THREAD = 20_000  # below this, one thread: a thread's start costs more
PLAIN, ZERO_MISSING, CATEGORICAL = 0, 1, 2  # a node's kind (CompiledTrees.kind)


@dataclass(frozen=True)
class CompiledTrees:
    """A model's trees as flat arrays. Node ``n`` (``>= 0``) splits on ``feature[n]``;
    its children are ``child[2n]`` (left) and ``child[2n + 1]``, nodes, or leaves as
    ``-1 - leaf``. ``kind[n]`` (:mod:`jobs.tree_kernels`): PLAIN, a numerical split whose
    NaN goes where ``nan_left[n]`` says; ZERO_MISSING, a numerical split whose 0 (and NaN)
    goes the ``default_left[n]`` way; CATEGORICAL, whose set is the bits
    ``cat_bits[cat_start[c]:cat_start[c + 1]]`` of ``c = category[n]``. ``plain[t]``: tree
    ``t`` has PLAIN splits only."""

    roots: np.ndarray  # int64, one per tree, in tree order
    plain: np.ndarray  # uint8, one per tree
    feature: np.ndarray  # int64
    threshold: np.ndarray  # float64
    child: np.ndarray  # int64, two per node
    kind: np.ndarray  # uint8
    nan_left: np.ndarray  # uint8
    default_left: np.ndarray  # uint8
    category: np.ndarray  # int64: -1 for a numerical split
    cat_start: np.ndarray  # int64
    cat_bits: np.ndarray  # uint32
    leaf_value: np.ndarray  # float64
    n_features: int
    sigmoid: float


def compile_booster(booster: Any) -> tuple[CompiledTrees | None, str]:
    """:func:`compile_text` of the trees ``booster.predict`` uses by default (those of the
    best iteration, when the booster has one)."""
    return compile_text(booster.model_to_string())


def compile_text(text: str) -> tuple[CompiledTrees | None, str]:
    """A LightGBM model file's trees for :func:`predict`, or None and why it cannot vouch
    for them. Read from the model's text (20-30 ms for 300 trees), not ``dump_model``'s
    JSON (0.8 s). A text it cannot read (another model file version) is refused, not
    raised: LightGBM, which read it, scores it."""
    try:
        return _compile(text)
    except (KeyError, ValueError, IndexError) as exc:
        return None, f"model text not understood ({type(exc).__name__}: {exc})"


def _compile(text: str) -> tuple[CompiledTrees | None, str]:
    head, _, rest = text.partition("\nTree=")
    header = _fields(head)
    if header.get("version") != "v4":
        return None, f"model file version {header.get('version')!r} (v4 is compiled)"
    objective = header.get("objective", "").split()
    if not objective or objective[0] != "binary":
        return None, f"objective {' '.join(objective) or 'unknown'!r} (only binary is compiled)"
    sigmoid = [float(t.split(":", 1)[1]) for t in objective if t.startswith("sigmoid:")]
    if len(sigmoid) != 1:
        return None, f"objective {' '.join(objective)!r} gives no sigmoid"
    if header.get("num_tree_per_iteration", "1") != "1" or "average_output" in header:
        return None, "more than one tree per iteration, or averaged trees (random forest)"
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("f", "t", "l", "r", "d", "c", "v")}
    roots, cat_start, cat_bits = [], [np.zeros(1, np.int64)], []
    nodes = leaves = cats = words = 0
    for block in rest.split("\nend of trees", 1)[0].split("\nTree="):
        tree = _fields("Tree=" + block)
        if tree.get("is_linear", "0") != "0":
            return None, "linear trees"
        n_leaves, n_cat = int(tree["num_leaves"]), int(tree.get("num_cat", "0"))
        values = _numbers(tree["leaf_value"], np.float64)
        if n_leaves > 1:
            kind = _numbers(tree["decision_type"], np.int64)
            child = {k: _numbers(tree[f"{k}_child"], np.int64) for k in ("left", "right")}
            for key, mine in (("l", child["left"]), ("r", child["right"])):
                # a node's child: a node of this tree, or a leaf (~leaf) of it
                parts[key].append(np.where(mine >= 0, mine + nodes, -1 - (leaves + ~mine)))
            categorical = (kind & 1) == 1
            threshold = _numbers(tree["threshold"], np.float64)
            parts["f"].append(_numbers(tree["split_feature"], np.int64))
            parts["t"].append(np.where(categorical, 0.0, threshold))
            parts["d"].append(kind)
            which = np.full(threshold.size, -1, np.int64)  # a categorical split's set
            which[categorical] = threshold[categorical].astype(np.int64) + cats
            parts["c"].append(which)
            roots.append(nodes)
            nodes += n_leaves - 1
        else:
            roots.append(-1 - leaves)
        if n_cat:
            bounds = _numbers(tree["cat_boundaries"], np.int64)
            cat_start.append(bounds[1:] + words)
            cat_bits.append(_numbers(tree["cat_threshold"], np.uint32))
            cats, words = cats + n_cat, words + int(bounds[-1])
        parts["v"].append(values)
        leaves += values.size

    def joined(key: str, kind: type) -> np.ndarray:
        return np.concatenate(parts[key]).astype(kind) if parts[key] else np.zeros(0, kind)

    decision = joined("d", np.int64)
    threshold = joined("t", np.float64)
    category = joined("c", np.int64)
    default_left = ((decision >> 1) & 1).astype(np.uint8)
    missing = (decision >> 2) & 3  # 0 None, 1 Zero, 2 NaN
    kind = np.where(category >= 0, CATEGORICAL, np.where(missing == 1, ZERO_MISSING, PLAIN))
    # a NaN: the default way for missing type NaN; as 0 for None (and Zero: 0 is missing)
    nan_left = np.where(missing == 0, threshold >= 0.0, default_left == 1)
    children = np.empty(2 * decision.size, np.int64)
    children[0::2], children[1::2] = joined("l", np.int64), joined("r", np.int64)
    n_roots = np.array(roots, np.int64)
    # a tree's nodes are the span from its root to the next tree's first node
    firsts = np.array([r for r in roots if r >= 0] + [decision.size], np.int64)
    complex_nodes = np.concatenate([[0], np.cumsum(kind != PLAIN)])
    plain = np.ones(n_roots.size, np.uint8)
    split = np.flatnonzero(n_roots >= 0)
    plain[split] = complex_nodes[firsts[1:]] == complex_nodes[firsts[:-1]]
    return (
        CompiledTrees(
            roots=n_roots,
            plain=plain,
            feature=joined("f", np.int64),
            threshold=threshold,
            child=children,
            kind=kind.astype(np.uint8),
            nan_left=nan_left.astype(np.uint8),
            default_left=default_left,
            category=category,
            cat_start=np.concatenate(cat_start),
            cat_bits=np.concatenate(cat_bits) if cat_bits else np.zeros(1, np.uint32),
            leaf_value=joined("v", np.float64),
            n_features=int(header["max_feature_idx"]) + 1,
            sigmoid=sigmoid[0],
        ),
        "",
    )


def _fields(block: str) -> dict[str, str]:
    """A model file block's ``key=value`` lines (a bare ``key`` line: an empty value)."""
    out = {}
    for line in block.splitlines():
        key, _, value = line.partition("=")
        out[key.strip()] = value.strip()
    return out


def _numbers(values: str, kind: type) -> np.ndarray:
    return np.array(values.split(), np.float64 if kind is np.float64 else np.int64).astype(kind)


def predict(trees: CompiledTrees, x: np.ndarray, threads: int) -> np.ndarray:
    """The probabilities ``Booster.predict(x)`` gives, on up to ``threads`` threads (0:
    one per core, as ``scoring.num_threads = 0`` means for LightGBM)."""
    if x.dtype not in (np.float32, np.float64):
        x = np.asarray(x, np.float32)  # as LightGBM converts other dtypes
    if x.ndim != 2 or x.shape[1] != trees.n_features:
        raise ValueError(
            f"the model takes {trees.n_features} features; the matrix has shape {x.shape}"
        )
    out = np.empty(x.shape[0], np.float64)
    cores = threads if threads > 0 else _cores()  # 0: every core, as for LightGBM
    parts = max(1, min(cores, x.shape[0] // MIN_ROWS_PER_THREAD))
    cuts = [x.shape[0] * i // parts for i in range(parts + 1)]
    spans = list(zip(cuts, cuts[1:], strict=False))
    if parts == 1:
        _walk(x, 0, x.shape[0], trees, out)
    else:
        with ThreadPoolExecutor(parts, thread_name_prefix="fw-trees") as pool:
            for done in [pool.submit(_walk, x, a, b, trees, out) for a, b in spans]:
                done.result()
    return out


def _cores() -> int:
    """The cores this process may run on (its CPU affinity, where the system tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _walk(x: np.ndarray, lo: int, hi: int, t: CompiledTrees, out: np.ndarray) -> None:
    from jobs.tree_kernels import scores

    scores(
        x, lo, hi, t.roots, t.plain, t.feature, t.threshold, t.child, t.kind, t.nan_left,
        t.default_left, t.category, t.cat_start, t.cat_bits, t.leaf_value, t.sigmoid, out,
    )  # fmt: skip


def warm_up() -> None:
    """Load the kernel's machine code for the matrices scoring passes (float32, by columns
    and by rows; numba caches one per type and layout), e.g. in a thread while a run
    ingests."""
    i64, u8 = np.zeros(1, np.int64), np.zeros(1, np.uint8)
    one = CompiledTrees(  # a tree of one node, its children two leaves
        roots=i64, plain=np.ones(1, np.uint8), feature=i64, threshold=np.zeros(1),
        child=np.array([-1, -2], np.int64), kind=u8, nan_left=u8, default_left=u8,
        category=np.full(1, -1, np.int64), cat_start=i64, cat_bits=np.zeros(1, np.uint32),
        leaf_value=np.zeros(2), n_features=1, sigmoid=1.0,
    )  # fmt: skip
    for order in ("F", "C"):
        predict(one, np.zeros((1, 1), np.float32, order=order), 1)
