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


def test_a_refusal_changes_no_alias_is_recorded_and_marks_the_failed_rules(world: World) -> None:
    # a candidate trained on a short, early window is worse than the champion out of time
    weak = train_version(world.cfg, start=date(2026, 3, 2), end=date(2026, 3, 6))
    before = open_registry(world.cfg).history("fraud", "champion")
    result = invoke(world, "promote", "challenger")  # an alias works where a version does
    assert result.exit_code == 3, result.output
    assert f"promotion of version {weak.version} refused by the gate" in result.output
    assert "FAILED primary_average_precision" in result.output
    assert "passed labelled_days" in result.output  # every rule, marked
    assert "report:" in result.output
    reg = open_registry(world.cfg)
    assert reg.get_alias("fraud", "champion").version == 1  # type: ignore[union-attr]
    after = reg.history("fraud", "champion")
    assert after[: len(before)] == before
    [refusal] = after[len(before) :]
    assert (refusal.kind, refusal.from_version, refusal.to_version) == ("refused", 1, weak.version)
    assert refusal.reason.startswith("gate refused: ") and "primary_average_precision" in (
        refusal.reason
    )
    assert refusal.report and refusal.report.endswith(f"gate-v{weak.version}.html")
    assert refusal.verdict is not None and refusal.verdict["passed"] is False
    assert "primary_average_precision" in refusal.verdict["failed_rules"]
    gate_reports = list((world.cfg.reports_dir / "gate").glob(f"*gate-v{weak.version}.html"))
    assert gate_reports and "REFUSED" in gate_reports[0].read_text()
    # the refusal is in the history people read, and is no holder to roll back to
    shown = invoke(world, "registry", "history", "--alias", "champion")
    assert f"refused  v{weak.version} refused, stays v1" in shown.output
    assert invoke(world, "rollback").exit_code == 1


def test_a_refusal_with_json_prints_the_result_object(world: World) -> None:
    weak = train_version(world.cfg, start=date(2026, 3, 2), end=date(2026, 3, 6))
    result = invoke(world, "promote", str(weak.version), "--json")
    assert result.exit_code == 3
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["exit_code"] == 3
    assert data["error_type"] == "PromotionRefused" and data["version"] == weak.version
    assert "primary_average_precision" in data["failed_rules"]
    assert any(r.startswith("FAILED primary_average_precision") for r in data["reasons"])
    assert data["report"].endswith(".html")


def test_promoting_the_champion_changes_nothing_and_says_so(world: World) -> None:
    before = open_registry(world.cfg).history("fraud")
    for ref in ("1", "champion"):
        result = invoke(world, "promote", ref)
        assert result.exit_code == 0, result.output
        assert result.stdout == "version 1 is already the champion: nothing changed\n"
    data = json.loads(invoke(world, "promote", "1", "--json").stdout)
    assert data["action"] == "unchanged" and data["passed"] is True
    assert open_registry(world.cfg).history("fraud") == before
    # so a rollback has nothing to go back to, rather than "from version 1 to version 1"
    nothing = invoke(world, "rollback")
    assert nothing.exit_code == 1 and "no earlier holder" in nothing.output
    compared = invoke(world, "compare", "champion")
    assert compared.exit_code == 0 and "is the champion: there is nothing to compare" in (
        compared.stdout
    )


def test_the_recorded_reason_of_a_promotion_is_its_metric_win(world: World) -> None:
    reg = open_registry(world.cfg)
    reg.clear_alias("fraud", "champion", reason="test: start over")
    result = invoke(world, "promote", "1")
    assert result.exit_code == 0, result.output
    event = reg.history("fraud", "champion")[-1]
    assert event.kind == "promote"
    assert event.reason.startswith("gate passed: no champion yet: validation average_precision")
    assert "training data quality" not in event.reason


def test_compare_json_has_every_metric_with_intervals(world: World) -> None:
    v2 = train_version(world.cfg, start=date(2026, 3, 5), end=date(2026, 3, 20))
    result = invoke(world, "compare", str(v2.version), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["champion_version"] == 1 and data["version"] == v2.version
    assert data["reasons"] and isinstance(data["passed"], bool)
    assert data["window"][0].startswith("2026-03-20")
    assert {c["name"] for c in data["checks"]} >= {"data_quality", "primary_average_precision"}
    assert data["failed_rules"] == [c["name"] for c in data["checks"] if not c["passed"]]


def test_force_needs_a_reason_and_is_recorded(world: World) -> None:
    weak = train_version(world.cfg, start=date(2026, 3, 2), end=date(2026, 3, 6))
    no_reason = invoke(world, "promote", str(weak.version), "--force")
    assert no_reason.exit_code == 2 and "--force needs --reason" in no_reason.output
    forced = invoke(world, "promote", str(weak.version), "--force", "--reason", "INC-42 hotfix")
    assert forced.exit_code == 0, forced.output
    assert "FORCED past the gate" in forced.output
    event = open_registry(world.cfg).history("fraud", "champion")[-1]
    assert (event.kind, event.to_version) == ("force", weak.version)
    assert event.reason.startswith("INC-42 hotfix (forced; gate failed: ")
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
    assert "FAILED data_quality: training data quality failed" in result.output
    assert "distance_km" in result.output


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
    if not data["promoted"]:  # a refused retrain is on record too
        assert data["gate"]["failed_rules"]
        assert open_registry(world.cfg).history("fraud", "champion")[-1].kind == "refused"
