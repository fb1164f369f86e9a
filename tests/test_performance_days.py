"""The performance report keeps each day's label-free figures between runs (issue 17: a
run's time flat in its history) and reads the window's fraud rows through known_frauds. Its
figures are those of the whole window read at once (``keep_days=False``, the reference),
on the first report (every day summarised), on the next (every day read back), and after
what changes a day: a late transaction scored into an old day, labels arriving late or
revoked, a challenger, a new threshold, rebuilt keys."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from jobs.cli import cli
from jobs.config import Config, load_config
from jobs.keys import assign_keys, keys_current
from jobs.performance_report import performance_report
from jobs.registry_access import open_registry
from jobs.warehouse import configured_warehouse, transaction, warehouse
from tests.approx import assert_close
from tests.scored_world import build, tied

LABEL = (
    "INSERT INTO labels (transaction_id, is_fraud, reported_at, source_file, source_row, "
    "ingested_at) VALUES "
)


def _reports(cfg: Config) -> tuple[Any, Any]:
    """The report from the kept days, then the whole window's (the reference)."""
    reg = open_registry(cfg)
    with configured_warehouse(cfg, read_only=True) as con:
        assert keys_current(con)  # else the kept days are not used at all
        kept = performance_report(con, cfg, reg)
        whole = performance_report(con, cfg, reg, keep_days=False)
    return kept, whole


def _files(cfg: Config) -> dict[str, Path]:
    """The kept files by ``<key>/<day>-<state>.parquet``."""
    top = cfg.performance_days_dir
    return {str(p.relative_to(top)): p for p in sorted(top.rglob("*.parquet"))}


def _rebuild_keys(cfg: Config) -> None:
    out = CliRunner().invoke(cli, ["warehouse", "rebuild-keys", "--config", str(cfg.path)])
    assert out.exit_code == 0, out.output


@pytest.mark.parametrize("burst", [0, 400])
def test_kept_days_give_the_whole_windows_figures_then_and_after_changes(
    tmp_path: Path, burst: int
) -> None:
    # written by SQL: the rebuilt keys make known_frauds current
    world = tied(tmp_path, burst)
    cfg = world.cfg
    _rebuild_keys(cfg)
    assert not cfg.performance_days_dir.exists()
    kept, whole = _reports(cfg)
    assert_close(kept, whole)
    files = _files(cfg)
    # the report window (14 matured days), the 7 since, the calibration's 28 + 7 before:
    # every day of the 30 scored has its file
    assert len(files) == 30
    again, _ = _reports(cfg)
    assert_close(again, whole)
    assert _files(cfg).keys() == files.keys()  # read back, none summarised again

    # a late transaction scored into a matured day, a fraud label arriving late for another
    # day's transaction, and a fraud label revoked
    results, window, _ = whole
    day = window.start + timedelta(days=3)
    with warehouse(cfg.warehouse_path) as con, transaction(con):
        con.execute(
            "INSERT INTO transactions (transaction_id, event_time, card_id, merchant_id, "
            "amount, source_file, source_row, ingested_at) VALUES "
            "('late1', ? + INTERVAL 5 HOUR, 'card00001', 'm1', 4321.5, 'late', 1, now())",
            [day],
        )
        con.execute(
            LABEL + "('late1', true, ?, 'late', 1, now())",
            [day + timedelta(days=1)],
        )
        [(legit, legit_time)] = con.execute(
            "SELECT transaction_id, event_time FROM transactions t WHERE event_time >= ? "
            "AND event_time < ? AND NOT EXISTS "
            "(SELECT 1 FROM labels l WHERE l.transaction_id = t.transaction_id) "
            "ORDER BY transaction_id LIMIT 1",
            [window.start + timedelta(days=8), window.end],
        ).fetchall()
        con.execute(
            LABEL + "(?, true, ?, 'late', 2, now())",
            [legit, legit_time + timedelta(days=1)],
        )
        [(fraud, reported)] = con.execute(
            "SELECT transaction_id, reported_at FROM labels JOIN transactions USING "
            "(transaction_id) WHERE is_fraud AND event_time >= ? AND event_time < ? "
            "ORDER BY transaction_id LIMIT 1",
            [window.start, window.start + timedelta(days=2)],
        ).fetchall()
        con.execute(
            LABEL + "(?, false, ? , 'late', 3, now())", [fraud, reported + timedelta(days=1)]
        )
        assign_keys(con)
        con.execute(
            "INSERT INTO scores SELECT transaction_id, 'fraud', 1, 'champion', 0.99, now(), "
            "'late', event_time, card_key, amount FROM transactions WHERE transaction_id = "
            "'late1'"
        )
    kept, whole = _reports(cfg)
    assert_close(kept, whole)
    # one more row; one more fraud, one more, one fewer
    assert (kept[0][0].n, kept[0][0].n_frauds) == (results[0].n + 1, results[0].n_frauds + 1)
    now = _files(cfg)
    assert len(now) == 30 and now.keys() != files.keys()
    assert {Path(n).name[:10] for n in now.keys() ^ files.keys()} == {f"{day:%Y-%m-%d}"}

    # a challenger scored on the last days, and a new threshold: new keys, the same figures
    reg = open_registry(cfg)
    info = reg.get_version("fraud", 1)
    text = reg.load_booster("fraud", 1).model_to_string()
    challenger = reg.register_version("fraud", text, info.lineage, actor="tests")
    reg.set_alias("fraud", "challenger", challenger.version, actor="tests", reason="shadow")
    with warehouse(cfg.warehouse_path) as con:
        con.execute(
            "INSERT INTO scores SELECT transaction_id, 'fraud', ?, 'challenger', "
            "round(sqrt(score), 2), now(), 'shadow', event_time, card_key, amount FROM scores "
            "WHERE role = 'champion' AND event_time >= ?",
            [challenger.version, window.start + timedelta(days=9)],
        )
    kept, whole = _reports(cfg)
    assert_close(kept, whole)
    assert [r.role for r in kept[0]] == ["champion", "challenger"]
    assert kept[0][1].n > 0 and kept[0][1].n_frauds > 0
    # the champion's days kept as they were; the challenger's days in a folder of their own
    after = _files(cfg)
    assert now.keys() <= after.keys()
    with configured_warehouse(cfg, read_only=True) as con:
        [(shadow_days,)] = con.execute(
            "SELECT count(DISTINCT event_time::DATE) FROM scores WHERE role = 'challenger'"
        ).fetchall()
    assert len(after) - len(now) == shadow_days > 0
    assert len({Path(n).parent for n in after.keys() - now.keys()}) == 1
    again, _ = _reports(cfg)  # both roles' days read back
    assert_close(again, whole)
    assert _files(cfg).keys() == after.keys()
    (cfg.path).write_text(cfg.path.read_text().replace("threshold = 0.5", "threshold = 0.3"))
    cfg = load_config(cfg.path)
    kept, whole = _reports(cfg)
    assert_close(kept, whole)
    assert kept[0][0].threshold == 0.3
    # each role's days under the new threshold's keys (the old ones go after a week unused)
    assert len({Path(n).parent for n in _files(cfg)}) == 4

    # rebuilt keys (renumbered cards) delete the kept days; the figures stay the same
    _rebuild_keys(cfg)
    assert not _files(cfg)
    kept, _ = _reports(cfg)
    assert_close(kept, whole)


def test_the_report_without_current_keys_reads_the_whole_window(tmp_path: Path) -> None:
    # a label written by hand, no assign_keys: known_frauds does not know it, so the kept
    # days are not used (they would miss that fraud) and the figures count it
    world = build(tmp_path, days=30, rows=600, cards=300, train_days=10, budget=5)
    cfg = world.cfg
    _rebuild_keys(cfg)
    kept, whole = _reports(cfg)
    assert_close(kept, whole)
    window = whole[1]
    with warehouse(cfg.warehouse_path) as con:
        [(tx, at)] = con.execute(
            "SELECT transaction_id, event_time FROM transactions WHERE event_time >= ? AND "
            "transaction_id NOT IN (SELECT transaction_id FROM labels) ORDER BY 1 LIMIT 1",
            [window.start],
        ).fetchall()
        con.execute(LABEL + "(?, true, ?, 'hand', 1, now())", [tx, at + timedelta(hours=1)])
    reg = open_registry(cfg)
    with configured_warehouse(cfg, read_only=True) as con:
        assert not keys_current(con)
        after = performance_report(con, cfg, reg)
    assert after[0][0].n_frauds == whole[0][0].n_frauds + 1


def test_a_folder_that_cannot_be_written_or_read_costs_time_not_figures(tmp_path: Path) -> None:
    world = build(tmp_path, days=30, rows=600, cards=300, train_days=10, budget=5)
    cfg = world.cfg
    _rebuild_keys(cfg)
    cfg.performance_days_dir.parent.mkdir(parents=True)
    cfg.performance_days_dir.write_text("not a folder")  # where the folder should be
    kept, whole = _reports(cfg)
    assert_close(kept, whole)
    assert cfg.performance_days_dir.read_text() == "not a folder"
    # a kept file damaged (a disk error, a hand edit): its days are summarised again
    cfg.performance_days_dir.unlink()
    _reports(cfg)
    files = _files(cfg)
    damaged = next(iter(files.values()))
    damaged.write_bytes(b"PAR1 not parquet")
    kept, _ = _reports(cfg)
    assert_close(kept, whole)
    assert _files(cfg).keys() == files.keys() and damaged.read_bytes()[:4] == b"PAR1"
    assert damaged.stat().st_size > 100
