"""Opening the warehouse file: the writer lock, waiting for another process's hold, and
the errors a disk gives (full, or a ``data_dir`` through a regular file) in plain words.

DuckDB lets one process write a file, and a writing process locks out every other one,
readers included. A writing job holds the *writer lock* (an flock on
``<data_dir>/warehouse.duckdb.writer.lock``) for its whole length, so a second one fails
fast, and opens the file itself only while it writes; :func:`connect` retries while
another process holds the file, up to ``[warehouse] lock_wait_seconds``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from jobs.errors import FraudwatchError, WarehouseLocked


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set lock" in text)


def is_disk_full(exc: BaseException) -> bool:
    """No room on the disk: the OS said so, or DuckDB could not spill to its temp folder
    ("failed to offload data block": its Out of Memory error when the spill file cannot grow)."""
    text = str(exc)
    return (
        getattr(exc, "errno", None) == errno.ENOSPC
        or "No space left on device" in text
        or "failed to offload data block" in text
    )


def disk_full(where: Path) -> FraudwatchError:
    return FraudwatchError(
        f"no space left on the disk holding {where}: free some space (DuckDB also spills to "
        f"{where}.tmp/ while it works) and run the command again; what it was writing was "
        "rolled back, so the warehouse is as it was before"
    )


def make_folder(folder: Path) -> None:
    """``data_dir`` and its parents, or a clear error naming the part that is a file."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (NotADirectoryError, FileExistsError):
        blocker = next(
            (p for p in [folder, *folder.parents] if p.exists() and not p.is_dir()), folder
        )
        raise FraudwatchError(
            f"data_dir {folder} cannot be created: {blocker} is a file, not a folder; set "
            "data_dir in the config to a folder (nothing was changed)"
        ) from None
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full(folder) from None
        raise FraudwatchError(f"data_dir {folder} cannot be created: {exc.strerror}") from None


_held: dict[str, tuple[int, int]] = {}  # lock path -> (fd, holders in this process)
_held_guard = threading.Lock()


@contextmanager
def writer_lock(path: Path) -> Iterator[None]:
    """The writer lock of the warehouse at ``path`` for the block: a second writing process
    fails fast with :class:`WarehouseLocked`. Re-entrant within a process (a run's stages,
    the scheduler's jobs), released when the process dies."""
    lock = str(path) + ".writer.lock"
    make_folder(path.parent)
    with _held_guard:
        fd, n = _held.get(lock, (-1, 0))
        if not n:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise WarehouseLocked(
                    f"the warehouse {path} is in use by another fraudwatch process (one "
                    "writing job at a time); nothing was changed, try again when it has "
                    "finished"
                ) from None
        _held[lock] = (fd, n + 1)
    try:
        yield
    finally:
        with _held_guard:
            fd, n = _held[lock]
            if n == 1:
                del _held[lock]
                os.close(fd)  # releases the flock
            else:
                _held[lock] = (fd, n - 1)


def quiet(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """No DuckDB progress bar: it prints to standard output (where ``--json`` writes, and into
    cron's mail) whenever a query runs over two seconds. Our own bars go to a terminal."""
    con.execute("SET enable_progress_bar = false")
    return con


def connect(path: Path, read_only: bool, wait: float) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect``, retried while another process holds the file, up to ``wait`` s."""
    deadline = time.monotonic() + wait
    pause = 0.05
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            quiet(con)
            return con
        except duckdb.IOException as exc:
            if not _is_lock_error(exc):
                if is_disk_full(exc):
                    raise disk_full(path) from None
                raise FraudwatchError(f"cannot open the warehouse {path}: {exc}") from None
            if time.monotonic() >= deadline:
                waited = f" for {wait:g} s" if wait else ""
                raise WarehouseLocked(
                    f"the warehouse {path} is held by another process (a fraudwatch job "
                    "writing, or a session that has it open; DuckDB lets a writer lock out "
                    f"everyone else); waited{waited}, nothing was changed: try again when "
                    "it has finished"
                ) from None
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


@contextmanager
def storage_errors(where: Path) -> Iterator[None]:
    """A full disk met inside the block, as a clear error."""
    try:
        yield
    except (duckdb.Error, OSError) as exc:
        if is_disk_full(exc):
            raise disk_full(where) from None
        raise
