"""Logging and progress: JSON lines when not on a terminal, progress bars when on one.

Every module logs through ``logging.getLogger("fraudwatch.<part>")`` with
``extra={"fields": {...}}`` for structured values; :func:`setup` installs the
handler once per process. Levels are names (``"warning"``), as in the JSON
lines. Secrets are never passed to a logger.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

T = TypeVar("T")

LEVELS = ("debug", "info", "warning", "error", "critical")

_configured = False


def level_number(level: int | str) -> int:
    """``"warning"`` (any case) -> 30; a number is returned as is. Unknown names: ValueError."""
    if isinstance(level, int):
        return level
    name = level.strip().lower()
    if name not in LEVELS:
        raise ValueError(f"unknown log level {level!r}: one of {', '.join(LEVELS)}")
    return int(logging.getLevelName(name.upper()))


def json_line(
    level: str, logger: str, msg: str, created: float | None = None, **fields: Any
) -> str:
    """One log line as JSON: ts, level, logger, msg and the fields."""
    ts = datetime.fromtimestamp(created, UTC) if created is not None else datetime.now(UTC)
    out: dict[str, Any] = {
        "ts": ts.isoformat(timespec="milliseconds"),
        "level": level,
        "logger": logger,
        "msg": msg,
    }
    out.update(fields)
    return json.dumps(out, default=str)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        extra: dict[str, Any] = dict(fields) if isinstance(fields, dict) else {}
        if record.exc_info:
            extra["exc"] = self.formatException(record.exc_info)
        return json_line(
            record.levelname.lower(), record.name, record.getMessage(), record.created, **extra
        )


class HumanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            msg += "  " + " ".join(f"{k}={v}" for k, v in fields.items())
        return f"{record.levelname.lower():7s} {msg}"


def is_terminal() -> bool:
    return sys.stderr.isatty()


def setup(level: int | str = "info", json_lines: bool | None = None) -> None:
    """Install the stderr handler: JSON lines unless stderr is a terminal."""
    global _configured
    root = logging.getLogger("fraudwatch")
    if _configured:
        root.setLevel(level_number(level))
        return
    use_json = (not is_terminal()) if json_lines is None else json_lines
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else HumanFormatter())
    root.addHandler(handler)
    root.setLevel(level_number(level))
    root.propagate = False
    _configured = True


def get(name: str) -> logging.Logger:
    return logging.getLogger(f"fraudwatch.{name}")


def event(logger: logging.Logger, msg: str, level: str = "info", **fields: Any) -> None:
    """Log ``msg`` at ``level`` (a name: ``"debug"``, ``"info"``, ``"warning"``, ``"error"``) with ``fields``."""
    logger.log(level_number(level), msg, extra={"fields": fields})


@contextmanager
def progress(label: str, total: int | None) -> Iterator[Any]:
    """A progress bar on a terminal, a no-op elsewhere. Yields an object with ``update(n)``."""
    if is_terminal() and total:
        import click

        with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
            yield bar
    else:
        yield _NoBar()


class _NoBar:
    def update(self, n: int) -> None:
        pass


def track(items: Iterable[T], label: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar on a terminal."""
    with progress(label, total) as bar:
        for item in items:
            yield item
            bar.update(1)


class Laps:
    """Where a job's time went, step by step: :meth:`lap` adds the seconds since the previous
    lap (or since the clock was made) to a step, rounded to milliseconds. With ``cpu``, each
    step's CPU seconds of this process too, as ``"<step> (cpu)"`` (where wall time and CPU
    time part, the step waited or ran on several cores)."""

    def __init__(self, seconds: dict[str, float] | None = None, *, cpu: bool = False) -> None:
        self.seconds: dict[str, float] = {} if seconds is None else seconds
        self._cpu = cpu
        self._wall, self._proc = time.perf_counter(), time.process_time()

    def lap(self, step: str) -> float:
        """Close ``step`` (added to what it already has); the seconds it took this time."""
        wall, proc = time.perf_counter(), time.process_time()
        taken = wall - self._wall
        self.seconds[step] = round(self.seconds.get(step, 0.0) + taken, 3)
        if self._cpu:
            key = f"{step} (cpu)"
            self.seconds[key] = round(self.seconds.get(key, 0.0) + proc - self._proc, 3)
        self._wall, self._proc = wall, proc
        return round(taken, 3)

    def skip(self) -> None:
        """Start the next step now: what passed since the last lap counts nowhere."""
        self._wall, self._proc = time.perf_counter(), time.process_time()
