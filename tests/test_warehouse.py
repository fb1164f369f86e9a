"""The warehouse's versioned schema: created on first use, migrated in place, never downgraded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import World

from jobs.errors import FraudwatchError
from jobs.warehouse import MIGRATIONS, SCHEMA_VERSION, open_warehouse


def test_a_new_warehouse_has_the_current_schema(tmp_path: Path) -> None:
    con = open_warehouse(tmp_path / "w.duckdb")
    versions = [
        r[0] for r in con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
    ]
    assert versions == list(range(1, SCHEMA_VERSION + 1))
    con.close()


def test_a_version_1_warehouse_is_migrated_and_keeps_its_scores(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:  # what fraudwatch's first release created
        con.execute(MIGRATIONS[0])
        con.execute(
            "CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)"
        )
        con.execute("INSERT INTO schema_version VALUES (1, now()::TIMESTAMP)")
        con.execute(
            "INSERT INTO scores VALUES ('t1', 'fraud', 1, 'champion', 0.9, now()::TIMESTAMP, 'r1')"
        )
    con = open_warehouse(path)
    assert con.execute("SELECT max(version) FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    assert con.execute("SELECT transaction_id, score, run_id FROM scores").fetchall() == [
        ("t1", 0.9, "r1")
    ]
    # v2 dropped the in-memory key index on scores (uniqueness holds by construction)
    keys = con.execute(
        "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'scores' "
        "AND constraint_type = 'PRIMARY KEY'"
    ).fetchall()
    assert keys == [(0,)]
    con.close()


def test_the_scores_of_a_version_8_warehouse_get_their_transactions_copies(
    tmp_path: Path,
) -> None:
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)"
        )
        for version, step in enumerate(MIGRATIONS[:8], start=1):
            con.execute(step)
            con.execute("INSERT INTO schema_version VALUES (?, now()::TIMESTAMP)", [version])
        con.execute(
            "INSERT INTO transactions (transaction_id, event_time, card_id, merchant_id, amount, "
            "source_file, source_row, ingested_at, card_key) VALUES "
            "('t1', TIMESTAMP '2026-03-01 10:00:00.123456', 'c1', 'm1', 12.5, 'f', 1, now(), 4)"
        )
        con.execute(
            "INSERT INTO scores VALUES ('t1', 'fraud', 1, 'champion', 0.9, now()::TIMESTAMP, 'r'),"
            " ('gone', 'fraud', 1, 'champion', 0.1, now()::TIMESTAMP, 'r')"
        )
    con = open_warehouse(path)
    assert con.execute(
        "SELECT transaction_id, event_time, card_key, amount FROM scores ORDER BY 1"
    ).fetchall() == [
        ("gone", None, None, None),  # its transaction is not in the warehouse
        ("t1", datetime(2026, 3, 1, 10, 0, 0, 123456), 4, 12.5),
    ]
    con.close()


def test_a_newer_warehouse_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    open_warehouse(path).close()
    with duckdb.connect(str(path)) as con:
        con.execute("INSERT INTO schema_version VALUES (?, now()::TIMESTAMP)", [SCHEMA_VERSION + 1])
    with pytest.raises(FraudwatchError, match="newer than this fraudwatch understands"):
        open_warehouse(path)


def _cli(cfg_path: Path, *args: str) -> Any:
    from click.testing import CliRunner

    from jobs.cli import cli

    return CliRunner().invoke(cli, [*args, "--config", str(cfg_path)])


@pytest.mark.parametrize("data_dir", ["a-file", "a-file/var"])
def test_a_data_dir_through_a_regular_file_is_a_clear_error(tmp_path: Path, data_dir: str) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "landing").mkdir()
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'data_dir = "{data_dir}"\n[source]\ntransactions = "landing/*.csv"\n')
    for command in (["ingest"], ["run"], ["alerts", "send"]):
        result = _cli(cfg, *command)
        assert result.exit_code == 1, result.output
        assert f"{tmp_path / 'a-file'} is a file, not a folder" in result.output
        assert "Traceback" not in result.output
        assert isinstance(result.exception, SystemExit)  # a handled error, not a crash
    assert (tmp_path / "a-file").read_text() == "not a folder"


@contextmanager
def _tmpfs(disk: Path, size: str) -> Iterator[Path]:
    """A filesystem of ``size`` (tmpfs) at ``disk``: needs root, as in the CI container."""
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MB filesystem."""
    with _tmpfs(tmp_path / "disk", "6m") as disk:
        yield disk


def test_a_full_disk_is_a_clear_error_and_changes_nothing(tmp_path: Path, small_disk: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    header = "transaction_id,event_time,card_id,merchant_id,amount\n"
    (landing / "a.csv").write_text(header + "t1,2026-03-01 10:00:00,c1,m1,1\n")
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'data_dir = "{small_disk}"\n[source]\ntransactions = "landing/*.csv"\n'
        '[warehouse]\nmemory_limit = "64MB"\n'
    )
    assert _cli(cfg, "ingest").exit_code == 0
    with (landing / "b.csv").open("w") as fh:  # far more than the disk holds
        fh.write(header)
        for i in range(400_000):
            fh.write(f"big-{i:07d}-{'x' * 20},2026-03-01 10:00:00,card-{i},m-{i % 999},{i}.25\n")
    result = _cli(cfg, "ingest")
    assert result.exit_code == 1, result.output
    assert f"no space left on the disk holding {small_disk}" in result.output
    assert "Traceback" not in result.output
    with duckdb.connect(str(small_disk / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT transaction_id FROM transactions").fetchall() == [("t1",)]
        assert con.execute("SELECT path FROM ingested_files").fetchall() == [("landing/a.csv",)]
    (landing / "b.csv").unlink()  # space is freed (the big file goes): all is well again
    assert _cli(cfg, "ingest").exit_code == 0


def test_a_disk_filling_up_while_scoring_keeps_whole_batches_in_order(
    world: World, tmp_path: Path
) -> None:
    """Scoring writes its batches on a thread of their own (jobs/scoring_writer.py): when a
    write fails for want of space, the run stops with the disk-full message, the batches
    written before it are whole and are the backlog's first ones, nothing after it is
    written, and the run after space is freed scores the rest, each row once."""
    from jobs.batch import run_batch

    run_batch(world.cfg, reports=False)  # the history scored, as yesterday's run left it
    world.land_days(date(2026, 4, 6), days=3)  # today's files, not ingested yet
    with _tmpfs(tmp_path / "disk", "32m") as disk:
        root = disk / "w"
        shutil.copytree(world.root, root)
        config = root / "config.toml"
        config.write_text(config.read_text().replace("batch_size = 5000", "batch_size = 500"))

        def fraudwatch(*args: str) -> subprocess.CompletedProcess[str]:
            command = [sys.executable, "-m", "jobs.cli_main", *args, "--config", str(config)]
            return subprocess.run(command, capture_output=True, text=True, timeout=300)

        assert fraudwatch("ingest").returncode == 0
        warehouse = root / "var" / "warehouse.duckdb"
        backlog_sql = (
            "SELECT transaction_id FROM transactions ANTI JOIN (SELECT transaction_id FROM "
            "scores WHERE role = 'champion') USING (transaction_id) "
            "ORDER BY event_time, transaction_id"
        )
        with duckdb.connect(str(warehouse), read_only=True) as con:
            backlog = [r[0] for r in con.execute(backlog_sql).fetchall()]
        assert len(backlog) > 3000  # more batches than the space left holds

        filler = disk / "filler"  # all but 700 KB: a batch or two's writes
        with filler.open("wb") as fh:
            os.posix_fallocate(fh.fileno(), 0, shutil.disk_usage(disk).free - 700 * 1024)
        failed = fraudwatch("run", "--no-reports")
        assert failed.returncode == 1, failed.stderr[-2000:]
        assert f"no space left on the disk holding {warehouse}" in failed.stderr
        assert "Traceback" not in failed.stderr and "BinderException" not in failed.stderr
        with duckdb.connect(str(warehouse), read_only=True) as con:
            scored = {
                r[0]
                for r in con.execute(
                    "SELECT transaction_id FROM scores WHERE transaction_id IN "
                    "(SELECT unnest(?::VARCHAR[]))",
                    [backlog],
                ).fetchall()
            }
        assert len(scored) % 500 == 0 and len(scored) < len(backlog)
        assert scored == set(backlog[: len(scored)])  # the first batches, whole

        filler.unlink()
        again = fraudwatch("run", "--no-reports")
        assert again.returncode == 0, again.stderr[-2000:]
        with duckdb.connect(str(warehouse), read_only=True) as con:
            assert con.execute(backlog_sql).fetchall() == []
            assert con.execute(
                "SELECT count(*) = count(DISTINCT (transaction_id, model_name, model_version)) "
                "FROM scores"
            ).fetchall() == [(True,)]
            assert con.execute(
                "SELECT count(*) FROM (SELECT alert_day FROM alerts GROUP BY 1 "
                "HAVING count(DISTINCT transaction_id) > 20)"
            ).fetchall() == [(0,)]


def test_a_job_started_beside_a_running_one_in_the_same_process_leaves_it_running(
    tmp_path: Path,
) -> None:
    """The scheduler runs jobs side by side in one process: a second job's start must not
    mark the first one interrupted; a run left by a dead process still is."""
    from jobs.runs import finish_run, start_run

    con = open_warehouse(tmp_path / "w.duckdb")
    con.execute(
        "INSERT INTO runs (run_id, job, started_at, status) VALUES "
        "('dead', 'run', now()::TIMESTAMP, 'running')"
    )
    first = start_run(con, "run")
    second = start_run(con, "reports")
    status = dict(con.execute("SELECT run_id, status FROM runs").fetchall())
    assert status == {"dead": "interrupted", first.run_id: "running", second.run_id: "running"}
    for rec in (second, first):
        rec.succeed()
        finish_run(con, rec)
    assert con.execute("SELECT count(*) FROM runs WHERE status = 'ok'").fetchall() == [(2,)]
    con.close()


def test_connections_print_no_progress_bar(tmp_path: Path) -> None:
    """DuckDB's progress bar prints to standard output on any query over two seconds: into
    ``fraudwatch run --json``'s output and cron's mail. Every connection fraudwatch opens,
    the warehouse's and a stage's own in-memory one, has it off."""
    from jobs.config import load_config
    from jobs.warehouse_windows import Windows

    (tmp_path / "config.toml").write_text('data_dir = "var"\n')
    cfg = load_config(tmp_path / "config.toml")
    con = open_warehouse(tmp_path / "w.duckdb")
    assert con.execute("SELECT current_setting('enable_progress_bar')").fetchall() == [(False,)]
    con.close()
    with Windows(cfg) as w:
        setting = w.con.execute("SELECT current_setting('enable_progress_bar')").fetchall()
    assert setting == [(False,)]
