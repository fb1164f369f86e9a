"""The champion/challenger lifecycle through the CLI: compare, promote (gated), force, rollback."""

from __future__ import annotations

import json
from datetime import date

from click.testing import CliRunner
from conftest import World

from jobs.batch import run_batch
from jobs.cli import cli
from jobs.registry_access import open_registry
from jobs.training import train_version
from jobs.warehouse import warehouse


def invoke(world: World, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, [*args, "--config", str(world.cfg.path)])


def test_gate_refuses_a_worse_candidate_changes_nothing_and_exits_3(world: World) -> None:
    # a candidate trained on a short, early window is worse than the champion out of time
    weak = train_version(world.cfg, start=date(2026, 3, 2), end=date(2026, 3, 6))
    before = open_registry(world.cfg).history("fraud", "champion")
    result = invoke(world, "promote", str(weak.version))
    assert result.exit_code == 3, result.output
    assert f"promotion of version {weak.version} refused by the gate" in result.output
    assert "report:" in result.output
    reg = open_registry(world.cfg)
    assert reg.get_alias("fraud", "champion").version == 1  # type: ignore[union-attr]
    assert reg.history("fraud", "champion") == before
    gate_reports = list((world.cfg.reports_dir / "gate").glob(f"*gate-v{weak.version}.html"))
    assert gate_reports and "REFUSED" in gate_reports[0].read_text()


def test_compare_json_has_every_metric_with_intervals(world: World) -> None:
    v2 = train_version(world.cfg, start=date(2026, 3, 5), end=date(2026, 3, 20))
    result = invoke(world, "compare", str(v2.version), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["champion_version"] == 1 and data["version"] == v2.version
    assert data["reasons"] and isinstance(data["passed"], bool)
    assert data["window"][0].startswith("2026-03-20")


def test_force_needs_a_reason_and_is_recorded(world: World) -> None:
    weak = train_version(world.cfg, start=date(2026, 3, 2), end=date(2026, 3, 6))
    no_reason = invoke(world, "promote", str(weak.version), "--force")
    assert no_reason.exit_code == 1 and "--force needs --reason" in no_reason.output
    forced = invoke(world, "promote", str(weak.version), "--force", "--reason", "INC-42 hotfix")
    assert forced.exit_code == 0, forced.output
    assert "FORCED past the gate" in forced.output
    event = open_registry(world.cfg).history("fraud", "champion")[-1]
    assert (event.kind, event.to_version, event.reason) == ("force", weak.version, "INC-42 hotfix")
    assert event.verdict is not None and event.verdict["passed"] is False
    # and the bad promotion is undone in one command
    back = invoke(world, "rollback", "--reason", "alerts look wrong")
    assert back.exit_code == 0, back.output
    assert f"from version {weak.version} to version 1" in back.output
    assert open_registry(world.cfg).get_alias("fraud", "champion").version == 1  # type: ignore[union-attr]
    nothing = invoke(world, "rollback")
    assert nothing.exit_code == 1 and "no earlier holder" in nothing.output


def test_quality_failure_can_never_be_promoted_without_force(world: World) -> None:
    with warehouse(world.cfg.warehouse_path) as con:
        con.execute(
            "UPDATE transactions SET distance_km = NULL WHERE hash(transaction_id) % 10 < 8"
        )
    bad = train_version(world.cfg, start=date(2026, 3, 5), end=date(2026, 3, 20))
    result = invoke(world, "promote", str(bad.version))
    assert result.exit_code == 3
    assert "training data quality failed" in result.output and "distance_km" in result.output


def test_promoted_champion_takes_over_scoring_without_rescoring_history(world: World) -> None:
    run_batch(world.cfg, reports=False)
    v2 = train_version(world.cfg, start=date(2026, 3, 5), end=date(2026, 3, 20))
    invoke(world, "promote", str(v2.version), "--force", "--reason", "test takeover")
    summary = run_batch(world.cfg, reports=False)
    assert summary.counts["score"]["champion_version"] == v2.version
    assert summary.counts["score"]["scored"] == 0  # v1 already scored everything as champion


def test_auto_retrain_registers_and_gates(world: World) -> None:
    world.cfg.path.write_text(world.cfg.path.read_text() + "\n[schedule]\nretrain = '0 3 * * 0'\n")
    result = invoke(world, "train", "--auto", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["version"] == 2 and data["gate"] is None  # [promotion] auto = false
    text = world.cfg.path.read_text().replace("[promotion]\n", "[promotion]\nauto = true\n")
    world.cfg.path.write_text(text)
    result = invoke(world, "train", "--auto", "--json")
    data = json.loads(result.stdout)
    assert data["gate"] is not None and isinstance(data["gate"]["passed"], bool)
    champion = open_registry(world.cfg).get_alias("fraud", "champion")
    assert champion is not None
    assert (champion.version == data["version"]) == data["promoted"]
