"""Training on the simulated world: lineage, reproducibility, data quality."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from conftest import World

from jobs.cli import cli
from jobs.errors import NotEnoughData
from jobs.registry_access import open_registry
from jobs.training import train_version
from jobs.warehouse import warehouse


def test_training_is_reproducible(world: World) -> None:
    reg = open_registry(world.cfg)
    v1 = reg.get_version("fraud", 1)
    again = train_version(world.cfg, start=date(2026, 3, 2), end=date(2026, 3, 23))
    v2 = reg.get_version("fraud", again.version)
    assert again.version == 2
    assert v2.lineage.fingerprint == v1.lineage.fingerprint
    x = np.random.default_rng(0).normal(size=(200, len(v1.lineage.feature_names)))
    p1 = reg.load_booster("fraud", 1).predict(x)
    p2 = reg.load_booster("fraud", 2).predict(x)
    assert np.array_equal(p1, p2)
    assert v2.artifact_sha256 == v1.artifact_sha256


def test_lineage_is_complete_and_version_is_the_challenger(world: World) -> None:
    result = train_version(world.cfg, start=date(2026, 3, 5), end=date(2026, 3, 26))
    reg = open_registry(world.cfg)
    info = reg.get_version("fraud", result.version)
    lin = info.lineage
    assert reg.get_alias("fraud", "challenger").version == result.version  # type: ignore[union-attr]
    assert lin.training_start.date() == date(2026, 3, 5)
    assert lin.training_end.date() == date(2026, 3, 26)
    assert lin.label_cutoff is not None and lin.label_cutoff.date() == date(2026, 4, 2)
    assert lin.rows == result.rows > 1000
    assert 0 < lin.fraud_rate < 0.05
    assert len(lin.fingerprint) == 64
    assert lin.feature_names[0] == "amount" and "channel" in lin.categorical_features
    assert lin.categorical_vocab["channel"] == ["atm", "online", "pos"]
    assert lin.data_quality["status"] == "passed"
    assert lin.params["objective"] == "binary" and lin.params["seed"] == 42
    assert 0 < lin.metrics["average_precision"] <= 1
    assert lin.code_version["package_version"]
    assert "importance_gain" in lin.extra
    assert info.actor
    # early stopping watched the gate's primary metric alone, and the trees are recorded
    stopping = lin.extra["early_stopping"]
    assert stopping["metric"] == "average_precision" and lin.params["metric"] == stopping["metric"]
    assert lin.extra["trees"] == stopping["trees"] == lin.metrics["best_iteration"] >= 1
    # 60 rounds (the test config) and a patience of 100: it ran them all, kept the best
    assert stopping["rounds_run"] == 60 and not stopping["stopped_early"]
    assert 1 <= stopping["trees"] <= 60
    # the world starts on 2026-03-02: rows of its first 37 days have windows not yet full
    assert any("not yet full" in w for w in lin.data_quality["warnings"])
    assert lin.data_quality["profile"]["amount"] == {"missing_rate": 0.0, "constant": False}
    # what each feature meant for this version: the merchant risk's window ends the delay back
    assert lin.extra["feature_version"] == 2 and lin.extra["label_delay_days"] == 7
    assert (
        lin.extra["feature_descriptions"]["merchant_fraud_rate_7d"]
        == "merchant's fraud rate over 7 day(s) ending 7 day(s) ago"
    )


def test_failed_quality_registers_with_reasons(world: World) -> None:
    with warehouse(world.cfg.warehouse_path) as con:
        con.execute(
            "UPDATE transactions SET distance_km = NULL WHERE hash(transaction_id) % 10 < 6"
        )
    result = train_version(world.cfg, start=date(2026, 3, 2), end=date(2026, 3, 23))
    info = open_registry(world.cfg).get_version("fraud", result.version)
    assert info.lineage.data_quality["status"] == "failed"
    [reason] = info.lineage.data_quality["reasons"]
    # refused for the right reason: distance_km became missing against the champion's data
    assert reason.startswith(
        "features missing more than 20% of the time (the champion's training data): distance_km"
    )
    assert reason.endswith("(was 0.0%)")
    shown = CliRunner().invoke(
        cli, ["registry", "show", str(result.version), "--config", str(world.cfg.path)]
    )
    assert shown.exit_code == 0
    assert "FAIL missing_rate" in shown.output and "distance_km" in shown.output
    assert "WARN warm_up" in shown.output  # a warning is shown as one, not as a failure
    assert "ok   min_rows" in shown.output


def test_empty_window_is_a_clear_error(world: World) -> None:
    with pytest.raises(NotEnoughData, match="cannot train"):
        train_version(world.cfg, start=date(2025, 1, 1), end=date(2025, 1, 2))


def test_train_cli_json(world: World) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--config",
            str(world.cfg.path),
            "--start",
            "2026-03-02",
            "--end",
            "2026-03-23",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["version"] == 2 and data["data_quality"]["status"] == "passed"
    listing = CliRunner().invoke(
        cli, ["registry", "list", "--config", str(world.cfg.path), "--json"]
    )
    versions = json.loads(listing.stdout)
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[1]["aliases"] == ["champion"] and versions[0]["aliases"] == ["challenger"]
    frame = pl.DataFrame(versions)
    assert frame.height == 2


def test_auto_retrain_promotes_a_better_model_and_refuses_a_broken_one(world: World) -> None:
    """The scheduled retrain (`train --auto`) on healthy data beats a weak champion and is
    promoted; trained again on a feed that lost distance_km, it is refused for that reason."""
    from jobs.config import load_config
    from jobs.promotion import promote

    base = world.cfg.path.read_text()
    weak = base.replace(
        "[model]\n", "[model]\nparams = { num_leaves = 2, min_data_in_leaf = 400 }\n"
    )
    weak = weak.replace("num_boost_round = 60", "num_boost_round = 2")
    world.cfg.path.write_text(weak)
    stump = train_version(load_config(world.cfg.path), start=date(2026, 3, 2), end=date(2026, 3, 9))
    promote(load_config(world.cfg.path), stump.version, force=True, reason="a weak champion")

    auto = base.replace("holdout_days = 0", "holdout_days = 7").replace(
        "[promotion]\n", "[promotion]\nauto = true\n"
    )
    world.cfg.path.write_text(auto)
    args = ["train", "--auto", "--json", "--config", str(world.cfg.path)]
    better = CliRunner().invoke(cli, args)
    assert better.exit_code == 0, better.output
    data = json.loads(better.stdout)
    assert data["data_quality"]["status"] == "passed", data["data_quality"]
    assert data["promoted"] is True, data["gate"]
    reg = open_registry(world.cfg)
    assert reg.get_alias("fraud", "champion").version == data["version"]  # type: ignore[union-attr]

    with warehouse(world.cfg.warehouse_path) as con:
        con.execute(
            "UPDATE transactions SET distance_km = NULL WHERE hash(transaction_id) % 10 < 7"
        )
    broken = CliRunner().invoke(cli, args)
    assert broken.exit_code == 0, broken.output
    refused = json.loads(broken.stdout)
    assert refused["data_quality"]["status"] == "failed"
    assert refused["promoted"] is False
    assert any("distance_km" in r for r in refused["gate"]["reasons"]), refused["gate"]
    assert reg.get_alias("fraud", "champion").version == data["version"]  # type: ignore[union-attr]


def test_early_stopping_keeps_the_best_trees_and_says_how_long_it_ran(world: World) -> None:
    from jobs.config import load_config

    text = world.cfg.path.read_text().replace(
        "num_boost_round = 60", "num_boost_round = 400\nearly_stopping_rounds = 5"
    )
    world.cfg.path.write_text(text)
    result = train_version(
        load_config(world.cfg.path), start=date(2026, 3, 2), end=date(2026, 3, 23)
    )
    lin = open_registry(world.cfg).get_version("fraud", result.version).lineage
    stopping = lin.extra["early_stopping"]
    assert stopping["stopped_early"] and stopping["patience"] == 5
    assert stopping["rounds_run"] == stopping["trees"] + 5 < 400
    assert (
        open_registry(world.cfg).load_booster("fraud", result.version).num_trees()
        == lin.extra["trees"]
    )


def test_a_model_trained_on_older_feature_definitions_is_flagged_when_loaded(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Version 1 of the merchant risk ended its windows at t; a model registered before the
    change has no feature_version in its lineage, and scoring with it says to retrain."""
    from dataclasses import replace

    from jobs.loaded_model import load_version

    reg = open_registry(world.cfg)
    info = reg.get_version("fraud", 1)
    old_extra = {k: v for k, v in info.lineage.extra.items() if k != "feature_version"}
    old = reg.register_version(
        "fraud",
        reg.load_booster("fraud", 1).model_to_string(),
        replace(info.lineage, extra=old_extra),
    )
    with caplog.at_level("WARNING", logger="fraudwatch.scoring"):
        load_version(reg, "fraud", 1, "champion")
    assert not [r for r in caplog.records if "older feature definitions" in r.getMessage()]
    with caplog.at_level("WARNING", logger="fraudwatch.scoring"):
        load_version(reg, "fraud", old.version, "champion")
    [warned] = [r for r in caplog.records if "older feature definitions" in r.getMessage()]
    assert warned.fields["version"] == old.version  # type: ignore[attr-defined]
