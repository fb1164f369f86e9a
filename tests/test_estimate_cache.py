"""Each day's performance estimate is kept between runs (jobs/estimate_cache.py): a kept
estimate is the computed one (==), any change to what the estimate reads makes another
file, a damaged file is estimated again and rewritten, a folder that cannot be written
still gives the estimate, and files unused for a week are deleted. Real files, no mocks."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jobs.estimate_cache import VERSION, EstimateCache, digest
from jobs.registry_access import open_registry
from jobs.warehouse import configured_warehouse
from reports.estimation import DayInput, estimate_day

OPTIONS: dict[str, Any] = {
    "simulations": 200,
    "confidence": 0.9,
    "seed": 3,
    "in_training": False,
    "calibration": "v1 refit on 28 days",
}


def _day(
    day: date = date(2026, 2, 1), *, n: int = 300, matured: bool = True, seed: int = 5, **kw: Any
) -> DayInput:
    rng = np.random.default_rng(seed)
    p = rng.beta(0.3, 6.0, n)
    top = np.argsort(-p, kind="stable")[:10]
    fields: dict[str, Any] = {
        "day": day,
        "matured": matured,
        "n": rng.integers(1, 40, n).astype(np.int64),
        "p": p,
        "order": np.argsort(np.argsort(-p, kind="stable"), kind="stable"),
        "above": p >= 0.2,
        "frauds": rng.integers(0, 3, n).astype(np.int64),
        "card_p": p[top],
        "card_fraud": rng.random(10) < p[top],
        "spread": 0.0,
    }
    return DayInput(**(fields | kw))


def _cases() -> dict[str, DayInput]:
    base = _day()
    return {
        "matured": base,
        "recent": _day(matured=False),
        "spread": _day(spread=0.4),
        # no bin at or above the threshold: precision's interval and realised are None
        "no alerts": dataclasses.replace(base, above=np.zeros(300, dtype=bool)),
        # no fraud in the labels: recall and average precision realised None
        "no frauds": dataclasses.replace(base, frauds=np.zeros(300, dtype=np.int64)),
        # no top cards: card precision's interval and realised are None
        "no cards": dataclasses.replace(base, card_p=np.zeros(0), card_fraud=np.zeros(0, bool)),
        "NaN card": dataclasses.replace(base, card_p=np.r_[np.nan, base.card_p[1:]]),
    }


def _file(cache: EstimateCache, d: DayInput, options: dict[str, Any] = OPTIONS) -> Path:
    key = digest(d, options)
    assert key is not None
    return cache.folder / f"{key}.json"


def test_a_kept_estimate_is_the_computed_one(tmp_path: Path) -> None:
    nones = 0
    for name, d in _cases().items():
        computed = estimate_day(d, **OPTIONS)
        first = EstimateCache(tmp_path)
        assert first.estimate_day(d, **OPTIONS) == computed, name
        assert _file(first, d).is_file() and first.estimated == 1 and not first.used
        again = EstimateCache(tmp_path)
        kept = again.estimate_day(d, **OPTIONS)
        assert again.used == [_file(again, d)] and again.estimated == 0, name  # read back
        assert kept == computed, name
        nones += sum(i.estimate is None for i in kept.estimated.values())
        nones += sum(v is None for v in kept.realised.values())
    assert nones >= 5  # the None cases were covered
    assert EstimateCache(tmp_path).folder.name == VERSION


def test_the_kept_file_is_what_is_read(tmp_path: Path) -> None:
    d = _day()
    EstimateCache(tmp_path).estimate_day(d, **OPTIONS)
    path = _file(EstimateCache(tmp_path), d)
    content = json.loads(path.read_text())
    content["estimated"]["average_precision"][0] = 0.123456789
    path.write_text(json.dumps(content))
    kept = EstimateCache(tmp_path).estimate_day(d, **OPTIONS)
    assert kept.estimated["average_precision"].estimate == 0.123456789


def test_any_change_to_the_inputs_is_another_file(tmp_path: Path) -> None:
    base = _day()

    def changed(name: str, value: Any) -> DayInput:
        return dataclasses.replace(base, **{name: value})

    def one(a: np.ndarray, value: Any) -> np.ndarray:
        a = a.copy()
        a[7] = value
        return a

    inputs = {
        "base": (base, OPTIONS),
        "n": (changed("n", one(base.n, base.n[7] + 1)), OPTIONS),
        "n dtype": (changed("n", base.n.astype(np.int32)), OPTIONS),
        "p": (changed("p", one(base.p, 0.9)), OPTIONS),
        "p by an ulp": (changed("p", one(base.p, np.nextafter(base.p[7], 1))), OPTIONS),
        "order": (changed("order", base.order[::-1].copy()), OPTIONS),
        "above": (changed("above", one(base.above, not base.above[7])), OPTIONS),
        "frauds": (changed("frauds", one(base.frauds, base.frauds[7] + 1)), OPTIONS),
        "card_p": (changed("card_p", one(base.card_p, 0.5)), OPTIONS),
        "card_fraud": (changed("card_fraud", ~base.card_fraud), OPTIONS),
        "day": (changed("day", date(2026, 2, 2)), OPTIONS),
        "matured": (changed("matured", False), OPTIONS),
        "spread": (changed("spread", 0.1), OPTIONS),
        "seed": (base, OPTIONS | {"seed": 4}),
        "simulations": (base, OPTIONS | {"simulations": 201}),
        "confidence": (base, OPTIONS | {"confidence": 0.8}),
        "in_training": (base, OPTIONS | {"in_training": True}),
        "calibration": (base, OPTIONS | {"calibration": "v1 refit on 27 days"}),
    }
    keys = {name: digest(d, o) for name, (d, o) in inputs.items()}
    assert None not in keys.values() and len(set(keys.values())) == len(keys)
    # each one's estimate, kept under its own key: none is another's
    results = {}
    for name, (d, o) in inputs.items():
        results[name] = EstimateCache(tmp_path).estimate_day(d, **o)
        assert results[name] == estimate_day(d, **o), name
    for name, (d, o) in inputs.items():
        assert EstimateCache(tmp_path).estimate_day(d, **o) == results[name], name
    assert len(list(EstimateCache(tmp_path).folder.glob("*.json"))) == len(inputs)
    differ = ("n", "p", "frauds", "matured", "seed", "simulations", "calibration", "in_training")
    for name in differ:
        assert results[name] != results["base"], name


def test_a_key_is_stable_for_equal_inputs_nan_included() -> None:
    d = _day(p=np.r_[np.nan, _day().p[1:]])
    same = DayInput(**{f.name: getattr(d, f.name) for f in dataclasses.fields(d)})
    copies = dataclasses.replace(d, p=d.p.copy(), n=np.asfortranarray(d.n))
    strided = dataclasses.replace(d, p=np.repeat(d.p, 2)[::2])  # not contiguous, same values
    keys = {digest(x, OPTIONS) for x in (d, same, copies, strided)}
    assert len(keys) == 1 and None not in keys
    assert digest(d, OPTIONS) == digest(d, dict(reversed(OPTIONS.items())))
    # an object array has no stable bytes: estimated, never kept
    assert digest(dataclasses.replace(d, card_fraud=d.card_fraud.astype(object)), OPTIONS) is None


@pytest.mark.parametrize(
    "damage",
    ["garbage", "truncated", "empty", "list", "another day's", "wrong type", "wrong day"],
)
def test_a_damaged_file_is_estimated_again_and_rewritten(tmp_path: Path, damage: str) -> None:
    d, other = _day(), _day(date(2026, 2, 2), seed=6)
    cache = EstimateCache(tmp_path)
    computed = cache.estimate_day(d, **OPTIONS)
    cache.estimate_day(other, **OPTIONS)
    path, good = _file(cache, d), _file(cache, d).read_text()
    content = json.loads(good)
    bad = {
        "garbage": b"\x00\xff\xfe not json \x80",
        "truncated": good[: len(good) // 2].encode(),
        "empty": b"",
        "list": b"[1, 2, 3]",
        "another day's": _file(cache, other).read_bytes(),
        "wrong type": json.dumps(content | {"n": str(content["n"])}).encode(),
        "wrong day": json.dumps(content | {"day": "2026-02-02"}).encode(),
    }[damage]
    path.write_bytes(bad)
    again = EstimateCache(tmp_path)
    assert again.estimate_day(d, **OPTIONS) == computed
    assert again.estimated == 1 and not again.used
    assert path.read_text() == good  # rewritten
    assert EstimateCache(tmp_path).estimate_day(d, **OPTIONS) == computed


def test_a_folder_that_cannot_be_written_still_gives_the_estimates(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the folder should be")
    cache = EstimateCache(blocker / "estimates")
    days = [_day(date(2026, 2, i)) for i in (1, 2, 3)]
    with caplog.at_level(logging.DEBUG, logger="fraudwatch.reports"):
        got = [cache.estimate_day(d, **OPTIONS) for d in days]
        cache.tidy()
    assert got == [estimate_day(d, **OPTIONS) for d in days]
    assert not cache.writable and cache.estimated == 3
    not_kept = [r for r in caplog.records if r.getMessage().startswith("estimates not kept")]
    assert len(not_kept) == 1 and not_kept[0].levelno == logging.DEBUG
    assert blocker.read_text() == "a file where the folder should be"


def test_files_and_versions_unused_for_a_week_are_deleted(tmp_path: Path) -> None:
    recent, stale, used = _day(date(2026, 2, 1)), _day(date(2026, 2, 2)), _day(date(2026, 2, 3))
    cache = EstimateCache(tmp_path)
    for d in (recent, stale, used):
        cache.estimate_day(d, **OPTIONS)
    old_version = tmp_path / "v0.1-numpy1.0"
    old_version.mkdir()
    (old_version / "0123.json").write_text("{}")
    week = time.time() - 8 * 86400
    for path in (_file(cache, stale), _file(cache, used), old_version / "0123.json", old_version):
        os.utime(path, (week, week))
    os.utime(_file(cache, recent), (time.time() - 6 * 86400,) * 2)

    again = EstimateCache(tmp_path)
    again.estimate_day(used, **OPTIONS)  # read: kept another week
    again.tidy()
    assert _file(cache, recent).exists() and _file(cache, used).exists()
    assert _file(cache, used).stat().st_mtime > time.time() - 60
    assert not _file(cache, stale).exists() and not old_version.exists()


def test_the_performance_report_keeps_its_estimates(tmp_path: Path) -> None:
    from jobs.performance_report import performance_report
    from tests.scored_world import tied

    cfg = tied(tmp_path).cfg
    reg = open_registry(cfg)
    with configured_warehouse(cfg, read_only=True) as con:
        *_, first = performance_report(con, cfg, reg)
        files = sorted(cfg.estimates_dir.rglob("*.json"))
        inodes = [p.stat().st_ino for p in files]
        *_, second = performance_report(con, cfg, reg, keep_days=False)
    assert first is not None and len(files) == len(first.days) > 0
    assert second == first
    # the whole window's inputs are the kept days' to the bit: every day read back, none new
    assert sorted(cfg.estimates_dir.rglob("*.json")) == files
    assert [p.stat().st_ino for p in files] == inodes  # none rewritten (os.replace)


# What estimate_day gives for one fixed day, per ESTIMATE_VERSION (6 decimals). Kept
# estimates are keyed by that version: a change to estimate_day's results that leaves the
# version as it was would have reports show estimates computed by the old code.
RECORDED = {
    1: {
        "average_precision": (0.234222, 0.136086, 0.368128),
        "precision_at_threshold": (0.269893, 0.15, 0.438804),
        "recall_at_threshold": (0.315067, 0.267527, 0.368919),
        "card_precision_at_k": (0.335, 0.1, 0.6),
    }
}


def test_a_change_to_the_estimates_results_comes_with_a_new_version() -> None:
    from reports.estimation import ESTIMATE_VERSION

    e = estimate_day(_day(spread=0.4), **OPTIONS)
    got = {
        m: tuple(None if x is None else round(x, 6) for x in (i.estimate, i.low, i.high))
        for m, i in e.estimated.items()
    }
    assert got == RECORDED.get(ESTIMATE_VERSION), (
        "estimate_day's results changed: bump reports.estimation.ESTIMATE_VERSION and record "
        "the new results in RECORDED (or, if numpy's random streams changed, record them "
        "under the same version: numpy's version is part of the kept files' key)"
    )
