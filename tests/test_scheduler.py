"""The scheduler daemon: real APScheduler, real job store, real processes and signals."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import duckdb
from apscheduler.events import EVENT_JOB_EXECUTED
from apscheduler.triggers.cron import CronTrigger
from conftest import World

from jobs.scheduler import build_scheduler, cron_trigger, deployment_lock

SCHEDULE = '\n[schedule]\nrun = "*/5 * * * *"\nreports = ""\nretrain = "0 3 * * 0"\n'


def test_cron_day_of_week_is_standard() -> None:
    sunday = cron_trigger("0 3 * * 0", "UTC")
    nxt = sunday.get_next_fire_time(
        None, __import__("datetime").datetime(2026, 11, 23, tzinfo=__import__("datetime").UTC)
    )
    assert nxt is not None and nxt.strftime("%A %H:%M") == "Sunday 03:00"


def test_scheduler_runs_the_job_and_the_ledger_is_written(world: World) -> None:
    world.cfg.path.write_text(world.cfg.path.read_text() + SCHEDULE)
    from jobs.config import load_config

    cfg = load_config(world.cfg.path)
    scheduler = build_scheduler(cfg, triggers={"run": CronTrigger(second="*", timezone="UTC")})
    done = threading.Event()
    scheduler.add_listener(
        lambda e: done.set() if e.job_id == "fraudwatch-run" else None, EVENT_JOB_EXECUTED
    )
    scheduler.start()
    try:
        assert done.wait(60), "the run job did not execute"
    finally:
        scheduler.shutdown(wait=True)
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
        runs = con.execute("SELECT job, status FROM runs WHERE job = 'run'").fetchall()
    assert runs and runs[0] == ("run", "ok")
    # the job store: stable ids, JSON (never pickle), in the registry database
    db = str(cfg.registry_url).removeprefix("sqlite:///")
    with sqlite3.connect(db) as s:
        rows = dict(s.execute("SELECT id, job_state FROM apscheduler_jobs").fetchall())
    assert set(rows) == {"fraudwatch-run", "fraudwatch-retrain"}
    state = json.loads(rows["fraudwatch-retrain"])
    assert state["coalesce"] is True and state["max_instances"] == 1
    assert state["misfire_grace_time"] == 300
    assert state["trigger"]["fields"]["day_of_week"] == "sun"


def test_a_second_scheduler_is_refused(world: World) -> None:
    with deployment_lock(world.cfg.data_dir):
        proc = subprocess.run(
            [sys.executable, "-m", "jobs.cli_main", "schedule", "--config", str(world.cfg.path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 1
    assert f"another fraudwatch scheduler (pid {os.getpid()}) is running" in proc.stderr


def test_sigterm_lets_the_running_job_finish(world: World) -> None:
    script = textwrap.dedent(
        f"""
        from apscheduler.triggers.cron import CronTrigger
        from jobs import logs
        from jobs.config import load_config
        from jobs.scheduler import serve
        logs.setup("INFO", json_lines=True)
        serve(load_config({str(world.cfg.path)!r}), triggers={{"run": CronTrigger(second="*", timezone="UTC")}})
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if '"job started"' in line:
            break
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=120)
    lines += rest.splitlines()
    assert proc.returncode == 0, lines
    messages = [json.loads(x)["msg"] for x in lines if x.strip().startswith("{")]
    assert "stopping: waiting for the running job" in messages
    assert messages.index("job finished") > messages.index("stopping: waiting for the running job")
    assert messages[-1] == "scheduler stopped"
    with duckdb.connect(str(world.cfg.warehouse_path), read_only=True) as con:
        assert con.execute("SELECT DISTINCT status FROM runs WHERE job = 'run'").fetchall() == [
            ("ok",)
        ]
