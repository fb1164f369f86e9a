"""``fraudwatch schedule``: the APScheduler 3.x daemon running the jobs of ``[schedule]``.

- jobs ``fraudwatch-run``, ``fraudwatch-reports``, ``fraudwatch-retrain`` with
  5-field cron expressions (``None`` disables one), stable ids, replaced on
  start so a config change applies at the next restart;
- a persistent job store in the registry database (table
  ``apscheduler_jobs``), so next run times and misfires survive restarts. It
  is APScheduler's SQLAlchemy job store with JSON instead of pickle for the
  job state: nothing is ever unpickled;
- ``coalesce`` (a backlog of missed runs runs once), one instance of each job at
  a time, ``misfire_grace_seconds`` from config;
- SIGTERM / SIGINT stop it gracefully: the running job finishes, then it exits;
- one scheduler per deployment: an exclusive ``flock`` on
  ``<data_dir>/scheduler.lock`` (which records the holder's pid); a second
  ``fraudwatch schedule`` exits at once naming it.
"""

from __future__ import annotations

import fcntl
import gc
import importlib
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.util import datetime_to_utc_timestamp
from sqlalchemy.exc import IntegrityError

from jobs import logs
from jobs.config import Config, Schedule, load_config
from jobs.errors import FraudwatchError

log = logs.get("scheduler")

JOBS = {
    "run": "jobs.batch:run_batch",
    "reports": "jobs.reporting:write_reports",
    "retrain": "jobs.promotion:retrain",
}
TABLE = "apscheduler_jobs"


class SchedulerRunning(FraudwatchError):
    """Another ``fraudwatch schedule`` holds this deployment's lock."""


# -- a JSON job store -------------------------------------------------------------------------
def _trigger_state(trigger: Any) -> dict[str, Any]:
    if not isinstance(trigger, CronTrigger):
        raise TypeError("fraudwatch's job store keeps cron triggers only")
    return {
        "fields": {f.name: str(f) for f in trigger.fields if not f.is_default},
        "timezone": str(trigger.timezone),
        "jitter": trigger.jitter,
    }


def _trigger(state: dict[str, Any]) -> CronTrigger:
    return CronTrigger(timezone=state["timezone"], jitter=state.get("jitter"), **state["fields"])


def _encode(job: Job) -> bytes:
    state = job.__getstate__()
    state["trigger"] = _trigger_state(state["trigger"])
    nrt = state["next_run_time"]
    state["next_run_time"] = nrt.isoformat() if nrt else None
    state["args"] = list(state["args"])
    return json.dumps(state).encode()


class JsonSQLAlchemyJobStore(SQLAlchemyJobStore):  # type: ignore[misc]
    """APScheduler's SQLAlchemy job store, serialising job state as JSON instead of pickle."""

    def add_job(self, job: Job) -> None:
        from apscheduler.jobstores.base import ConflictingIdError

        insert = self.jobs_t.insert().values(
            id=job.id,
            next_run_time=datetime_to_utc_timestamp(job.next_run_time),
            job_state=_encode(job),
        )
        with self.engine.begin() as connection:
            try:
                connection.execute(insert)
            except IntegrityError:
                raise ConflictingIdError(job.id) from None

    def update_job(self, job: Job) -> None:
        from apscheduler.jobstores.base import JobLookupError

        update = (
            self.jobs_t.update()
            .values(
                next_run_time=datetime_to_utc_timestamp(job.next_run_time), job_state=_encode(job)
            )
            .where(self.jobs_t.c.id == job.id)
        )
        with self.engine.begin() as connection:
            if connection.execute(update).rowcount == 0:
                raise JobLookupError(job.id)

    def _reconstitute_job(self, job_state: bytes) -> Job:
        state = json.loads(job_state)
        state["trigger"] = _trigger(state["trigger"])
        state["args"] = tuple(state["args"])
        if state["next_run_time"]:
            state["next_run_time"] = datetime.fromisoformat(state["next_run_time"])
        state["jobstore"] = self
        job = Job.__new__(Job)
        job.__setstate__(state)
        job._scheduler = self._scheduler
        job._jobstore_alias = self._alias
        return job


# -- cron expressions ----------------------------------------------------------------------------
_DOW = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _dow(field: str) -> str:
    """Standard cron day-of-week numbers (0 or 7 = Sunday) as names, which APScheduler 3
    reads unambiguously (its own numbers start at Monday = 0)."""
    return re.sub(r"(?<![/\d])([0-7])(?!\d)", lambda m: _DOW[int(m.group(1))], field)


def cron_trigger(expr: str, timezone: str) -> CronTrigger:
    """A trigger for a standard 5-field crontab expression."""
    minute, hour, day, month, dow = expr.split()
    return CronTrigger(
        minute=minute, hour=hour, day=day, month=month, day_of_week=_dow(dow), timezone=timezone
    )


# -- the job entry point ------------------------------------------------------------------------
def run_job(job_name: str, config_path: str) -> None:
    """What the scheduler calls: load config afresh, run one job, log its outcome."""
    started = time.monotonic()
    logs.event(log, "job started", job=job_name)
    try:
        module, func = JOBS[job_name].split(":")
        fn = getattr(importlib.import_module(module), func)
        result = fn(load_config(config_path))
        summary = result.to_dict() if hasattr(result, "to_dict") else result
        logs.event(
            log,
            "job finished",
            job=job_name,
            seconds=round(time.monotonic() - started, 3),
            status=(summary or {}).get("status", "ok") if isinstance(summary, dict) else "ok",
        )
    except Exception as exc:  # the daemon lives on; the run ledger has the details
        logs.event(
            log,
            "job failed",
            "error",
            job=job_name,
            seconds=round(time.monotonic() - started, 3),
            error=f"{type(exc).__name__}: {exc}",
        )
    finally:  # the CLI delays full collections (jobs.process_setup): the daemon has one per job
        gc.collect()


# -- the scheduler ------------------------------------------------------------------------------
def job_specs(s: Schedule) -> dict[str, str]:
    specs = {"run": s.run, "reports": s.reports, "retrain": s.retrain}
    return {name: expr for name, expr in specs.items() if expr}


def build_scheduler(
    cfg: Config,
    *,
    triggers: dict[str, Any] | None = None,
    func: str = "jobs.scheduler:run_job",
) -> BaseScheduler:
    """The configured scheduler (not started). ``triggers`` overrides the cron triggers."""
    s = cfg.settings.schedule
    store = JsonSQLAlchemyJobStore(url=cfg.registry_url, tablename=TABLE)
    scheduler = BackgroundScheduler(
        jobstores={"default": store},
        # one job at a time: each holds the warehouse's writer lock for its whole length, so
        # an overlapping run, reports or retrain would only fail fast; queued, each waits
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": s.misfire_grace_seconds,
        },
        timezone=s.timezone,
    )
    for name, expr in job_specs(cfg.settings.schedule).items():
        trigger = (triggers or {}).get(name) or cron_trigger(expr, s.timezone)
        scheduler.add_job(
            func,
            trigger,
            args=[name, str(cfg.path)],
            id=f"fraudwatch-{name}",
            name=f"fraudwatch {name}",
            replace_existing=True,
        )

    def _listen(event: JobExecutionEvent) -> None:
        what = "missed" if event.code == EVENT_JOB_MISSED else "error"
        logs.event(log, f"scheduled job {what}", "warning", job=event.job_id)

    scheduler.add_listener(_listen, EVENT_JOB_MISSED | EVENT_JOB_ERROR)
    return scheduler


@contextmanager
def deployment_lock(data_dir: Path) -> Iterator[Path]:
    """Hold ``<data_dir>/scheduler.lock`` exclusively, or raise SchedulerRunning at once."""
    path = data_dir / "scheduler.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fh: IO[str] = path.open("a+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "unknown"
        fh.close()
        raise SchedulerRunning(
            f"another fraudwatch scheduler (pid {holder}) is running for this deployment "
            f"({path}); stop it first"
        ) from None
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield path
    finally:
        fh.close()


def serve(cfg: Config, *, triggers: dict[str, Any] | None = None) -> None:
    """Run the daemon until SIGTERM or SIGINT; the running job finishes first.

    The scheduler runs in a background thread and the main thread only sleeps:
    the signal handler just records the signal, and the shutdown (which waits
    for the running job) happens back in the main loop. Waiting inside the
    handler could deadlock on a lock (logging, APScheduler's listeners) that
    the interrupted main thread happened to hold.
    """
    with deployment_lock(cfg.data_dir):
        scheduler = build_scheduler(cfg, triggers=triggers)
        received: list[int] = []

        def _record(signum: int, frame: Any) -> None:
            received.append(signum)

        previous = {sig: signal.signal(sig, _record) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for job in scheduler.get_jobs():
                logs.event(log, "scheduled", job=job.id, trigger=str(job.trigger))
            scheduler.start()
            while not received:
                time.sleep(0.2)
            logs.event(log, "stopping: waiting for the running job", signal=received[0])
            scheduler.shutdown(wait=True)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        logs.event(log, "scheduler stopped")
