"""Analysts read the warehouse during a run (issue 14, point 5).

A run holds the file read-write only for each short write (jobs/warehouse_windows.py): an
analyst's process that keeps opening a read-only connection, querying and closing gets
in all along a long ingest and a long scoring stage, and the run's results are the same
as without the analyst. A session held open makes a write wait up to
``warehouse.lock_wait_seconds``, then the job stops with a clear message.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest
from conftest import World

from jobs.config import load_config
from jobs.errors import WarehouseLocked
from jobs.warehouse import open_warehouse
from jobs.warehouse_windows import Windows

# an analyst: open read-only, query, close, in a loop until told to stop; a query that
# lands inside a write window is retried every 5 ms (for up to 30 s, then it counts as
# failed); prints what it saw as JSON
ANALYST = textwrap.dedent(
    """
    import json, sys, time, duckdb
    path, stop = sys.argv[1], sys.argv[2]
    seen = {"queries": 0, "retried": 0, "failed": 0, "longest_retry": 0.0,
            "scores": [], "labels": []}
    import os
    while not os.path.exists(stop):
        began, tries = time.monotonic(), 0
        while True:
            tries += 1
            try:
                with duckdb.connect(path, read_only=True) as con:
                    s = con.execute("SELECT count(*) FROM scores").fetchall()[0][0]
                    l = con.execute("SELECT count(*) FROM labels").fetchall()[0][0]
                break
            except duckdb.IOException:
                if time.monotonic() - began > 30:
                    seen["failed"] += 1
                    s = l = None
                    break
                time.sleep(0.005)
        waited = time.monotonic() - began
        if s is not None:
            seen["queries"] += 1
            seen["scores"].append(s)
            seen["labels"].append(l)
        if tries > 1:
            seen["retried"] += 1
            seen["longest_retry"] = max(seen["longest_retry"], waited)
        time.sleep(0.01)
    seen["scores"] = sorted(set(seen["scores"]))
    seen["labels"] = sorted(set(seen["labels"]))
    print(json.dumps(seen))
    """
)


def _fw(*args: str) -> list[str]:
    return [sys.executable, "-m", "jobs.cli_main", *args]


def _results(root: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(root / "var" / "warehouse.duckdb"), read_only=True) as con:
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        return {
            "transactions": q("SELECT transaction_id, amount FROM transactions ORDER BY 1"),
            "labels": q("SELECT transaction_id, is_fraud, reported_at FROM labels ORDER BY ALL"),
            "scores": q(
                "SELECT transaction_id, model_version, role, round(score, 12) FROM scores "
                "ORDER BY ALL"
            ),
            "alerts": q(
                "SELECT transaction_id, channel, alert_day, round(score, 12), reasons "
                "FROM alerts ORDER BY ALL"
            ),
            "runs": q("SELECT job, status FROM runs ORDER BY started_at"),
        }


def test_an_analyst_queries_all_along_a_long_run_and_the_results_are_the_same(
    world: World, tmp_path: Path
) -> None:
    world.land_days(date(2026, 4, 6), days=8)  # 8 transactions files, 8 labels files
    text = world.cfg.path.read_text().replace(
        "batch_size = 5000", "batch_size = 500\nfeature_chunk_size = 4000"
    )
    world.cfg.path.write_text(text)
    reference = tmp_path / "reference"
    shutil.copytree(world.root, reference)  # the same deployment, run with no analyst
    path = world.cfg.warehouse_path
    with duckdb.connect(str(path), read_only=True) as con:
        before = con.execute("SELECT count(*) FROM labels").fetchall()[0][0]

    stop = tmp_path / "stop"
    analyst = subprocess.Popen(
        [sys.executable, "-c", ANALYST, str(path), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    run = subprocess.run(
        _fw("run", "--no-reports", "--json", "--config", str(world.cfg.path)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    stop.touch()
    out, err = analyst.communicate(timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert analyst.returncode == 0, err[-2000:]
    seen = json.loads(out)
    summary = json.loads(run.stdout)
    windows = summary["counts"]["windows"]
    print("analyst:", {k: v for k, v in seen.items() if k not in ("scores", "labels")})
    print("windows:", windows)

    # every analyst query got its answer (some after a retry of a few ms)
    assert seen["failed"] == 0 and seen["queries"] > 20
    # ... and some came while labels files were still being ingested one window each, and
    # while the scoring stage wrote batch after batch
    after = _results(world.root)
    assert any(before < n < len(after["labels"]) for n in seen["labels"]), seen["labels"]
    assert any(0 < n < len(after["scores"]) for n in seen["scores"]), seen["scores"][:20]
    assert windows["ingest"]["writes"] >= 9  # a group of transactions files, 8 labels files
    assert windows["score"]["writes"] >= summary["counts"]["score"]["batches"]

    finished = subprocess.run(
        _fw("run", "--no-reports", "--json", "--config", str(reference / "config.toml")),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    alone = _results(reference)
    assert after == alone
    assert after["runs"][-1] == ("run", "ok")


def _hold_read_only(path: Path, seconds: float) -> subprocess.Popen[str]:
    """An analyst's session left open for ``seconds``; returns once it holds the file."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, duckdb\n"
            "con = duckdb.connect(sys.argv[1], read_only=True)\n"
            "print('holding', flush=True)\n"
            "time.sleep(float(sys.argv[2]))\n",
            str(path),
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
    return proc


@pytest.mark.parametrize("wait", [0.5, 10.0])
def test_a_write_waits_for_a_session_held_open_up_to_lock_wait_seconds(
    tmp_path: Path, wait: float
) -> None:
    (tmp_path / "config.toml").write_text(
        f'data_dir = "var"\n[warehouse]\nlock_wait_seconds = {wait}\n'
    )
    cfg = load_config(tmp_path / "config.toml")
    open_warehouse(cfg.warehouse_path).close()
    holder = _hold_read_only(cfg.warehouse_path, 2.0)
    windows = Windows(cfg)
    try:
        with windows.reading() as con:  # readers share the file
            assert con.execute("SELECT count(*) FROM transactions").fetchall() == [(0,)]
        if wait < 2.0:
            with (
                pytest.raises(WarehouseLocked, match="lock_wait_seconds") as info,
                windows.writing("a test row") as con,
            ):
                con.execute("INSERT INTO runs (run_id, job, started_at, status) "
                            "VALUES ('r', 'test', now()::TIMESTAMP, 'ok')")  # fmt: skip
            assert "close sessions when done" in str(info.value)
        else:
            with windows.writing("a test row") as con:
                con.execute("INSERT INTO runs (run_id, job, started_at, status) "
                            "VALUES ('r', 'test', now()::TIMESTAMP, 'ok')")  # fmt: skip
            assert windows.stats.writes == 1 and windows.stats.waited_seconds > 0.5
    finally:
        windows.close()
        holder.wait(30)
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
        rows = con.execute("SELECT run_id FROM runs").fetchall()
    assert rows == ([] if wait < 2.0 else [("r",)])
