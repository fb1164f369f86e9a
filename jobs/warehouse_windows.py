"""Short windows on the warehouse file for a long stage, so analysts read during a run.

DuckDB locks a file two ways: a process that has it open read-write locks out every
other process, readers included, and a process that has it open read-only locks out
writers. So a long stage (ingest, scoring) must not keep the file open read-write: it
works in a private in-memory DuckDB connection (:attr:`Windows.con`) whose temp tables and
views (staged landing files, the backlog, a chunk's ids) live as long as the stage, and
*attaches* the warehouse file only for a window:

- :meth:`Windows.reading`: attached read-only (analysts' read-only sessions share it):
  finding the backlog, computing features, checking ids against the warehouse;
- :meth:`Windows.writing`: attached read-write, only to write one whole-or-nothing
  transaction (a group of landing files, a batch's scores and alerts); detaching folds the
  write-ahead log into the file, so the next reader opens it at once.

Between windows the file is not open at all. A writing window that finds the file held
by another process (an analyst's open session) waits up to ``[warehouse]
lock_wait_seconds`` for it, polling every few milliseconds, and logs the wait; past it the
stage stops with :class:`~jobs.errors.WarehouseLocked` (what earlier windows committed
stays: every stage is idempotent, and the next run continues). The writer lock (an flock
beside the file) is held by the job for its whole length, so nothing else writes between
a stage's reading window and its writing window.

:class:`Held` gives the same interface over one connection held throughout (what callers
that pass a connection, such as tests and the demo, had before).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import duckdb

from jobs import logs
from jobs.config import Config
from jobs.errors import WarehouseLocked
from jobs.warehouse_access import (
    disk_full,
    is_disk_full,
    make_folder,
    quiet,
    storage_errors,
    writer_lock,
)

log = logs.get("warehouse")

ALIAS = "fw_warehouse"
_POLL = 0.01  # seconds between attempts while another process holds the file


@dataclass
class WindowStats:
    """How a stage used the file: its write windows (count, total and longest seconds, the
    file held read-write) and how long it waited for other holders."""

    reads: int = 0
    writes: int = 0
    write_seconds: float = 0.0
    longest_write: float = 0.0
    waited_seconds: float = 0.0
    longest_wait: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in self.__dict__.items()}


class Access(Protocol):
    """What a stage needs of the warehouse: reading and writing windows, and its connection
    (for temp tables and views that outlive a window)."""

    con: duckdb.DuckDBPyConnection
    stats: WindowStats

    def reading(self) -> Any: ...  # a context manager yielding the connection

    def writing(self, what: str) -> Any: ...

    def checkpoint(self) -> None: ...


def _lock_conflict(exc: Exception) -> bool:
    """Another process holds the file (DuckDB's file lock), or another connection of this
    process has it open (the scheduler's other job)."""
    if isinstance(exc, duckdb.ResourceInUseException):
        return True
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set lock" in text)


class Windows:
    """A stage's in-memory connection and its windows on the warehouse at ``cfg``."""

    def __init__(self, cfg: Config, *, memory_limit: str | None = None) -> None:
        w = cfg.settings.warehouse
        self.path: Path = cfg.warehouse_path
        self.wait = float(w.lock_wait_seconds)
        self.stats = WindowStats()
        self._mode: str | None = None
        make_folder(self.path.parent)
        self.con = quiet(duckdb.connect(":memory:"))
        self.con.execute("SET TimeZone = 'UTC'")  # naive timestamps in the warehouse are UTC
        self.con.execute("SET preserve_insertion_order = false")  # every read orders explicitly
        # what the stage keeps between windows spills where the warehouse's own work does
        self.con.execute("SET temp_directory = ?", [str(self.path) + ".tmp"])
        self.con.execute(f"SET memory_limit = '{memory_limit or w.memory_limit}'")  # validated
        if w.threads:
            self.con.execute(f"SET threads = {int(w.threads)}")

    def __enter__(self) -> Windows:
        return self

    def __exit__(self, kind: object, value: BaseException | None, tb: object) -> None:
        self.close()
        # the stage's own work (staging files, the backlog) spills beside the warehouse too
        if isinstance(value, duckdb.Error | OSError) and is_disk_full(value):
            raise disk_full(self.path) from None

    def close(self) -> None:
        self._detach()
        self.con.close()

    def checkpoint(self) -> None:
        """Nothing to do: detaching after each write folded it into the file."""

    def _attach(self, read_only: bool) -> float:
        """Attach the file; returns the seconds waited for another holder."""
        mode = " (READ_ONLY)" if read_only else ""
        started = time.monotonic()
        told = False
        while True:
            try:
                self.con.execute(f"ATTACH '{_quoted(self.path)}' AS {ALIAS}{mode}")
                break
            except (duckdb.IOException, duckdb.ResourceInUseException) as exc:
                if not _lock_conflict(exc):
                    if is_disk_full(exc):
                        raise disk_full(self.path) from None
                    raise
                waited = time.monotonic() - started
                if waited >= self.wait:
                    raise WarehouseLocked(
                        f"the warehouse {self.path} was held by another process (an analyst's "
                        "session left open, or a session that opened it read-write) for "
                        f"{self.wait:g} s (warehouse.lock_wait_seconds) while this job waited "
                        f"to {'read' if read_only else 'write'}; what it wrote before is "
                        "committed, and the next run carries on from there: close sessions "
                        "when done"
                    ) from None
                if not told:
                    logs.event(
                        log,
                        "waiting for the warehouse",
                        path=str(self.path),
                        to="read" if read_only else "write",
                        up_to_seconds=self.wait,
                    )
                    told = True
                time.sleep(_POLL)
        self.con.execute(f"USE {ALIAS}")
        self._mode = "read" if read_only else "write"
        waited = time.monotonic() - started
        if told:
            logs.event(log, "got the warehouse", waited_seconds=round(waited, 3))
        self.stats.waited_seconds += waited
        self.stats.longest_wait = max(self.stats.longest_wait, waited)
        return waited

    def _detach(self) -> None:
        if self._mode is None:
            return
        self._mode = None
        try:
            self.con.execute("USE memory")
            self.con.execute(f"DETACH {ALIAS}")
        except duckdb.Error:  # a transaction left open by an interrupted block
            try:
                self.con.execute("ROLLBACK")
            except duckdb.Error:
                pass
            self.con.execute("USE memory")
            # a DETACH that failed writing its checkpoint (a full disk) has detached the
            # file all the same: what was committed is in its WAL, replayed at the next open
            attached = self.con.execute(
                "SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", [ALIAS]
            ).fetchall()[0][0]
            if attached:
                self.con.execute(f"DETACH {ALIAS}")

    @contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The file attached read-only for the block (or as it is, inside a writing window)."""
        if self._mode is not None:
            yield self.con
            return
        self._attach(read_only=True)
        self.stats.reads += 1
        try:
            with storage_errors(self.path):
                yield self.con
        finally:
            self._detach()

    @contextmanager
    def writing(self, what: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """The file attached read-write for the block, which should be one transaction."""
        if self._mode == "write":
            yield self.con
            return
        if self._mode == "read":
            raise RuntimeError(f"{what}: a writing window inside a reading window")
        with writer_lock(self.path):
            self._attach(read_only=False)
            began = time.monotonic()
            try:
                with storage_errors(self.path):
                    yield self.con
            finally:
                self._detach()
                held = time.monotonic() - began
                self.stats.writes += 1
                self.stats.write_seconds += held
                self.stats.longest_write = max(self.stats.longest_write, held)
                logs.event(log, "write window", "debug", what=what, seconds=round(held, 4))


class Held:
    """The windows over one connection held throughout: every window is that connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.stats = WindowStats()

    @contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        yield self.con

    @contextmanager
    def writing(self, what: str) -> Iterator[duckdb.DuckDBPyConnection]:
        yield self.con

    def checkpoint(self) -> None:
        self.con.execute("CHECKPOINT")


def access_of(con: duckdb.DuckDBPyConnection | Access) -> Access:
    """A connection held by the caller as :class:`Held`; windows as they are."""
    return Held(con) if isinstance(con, duckdb.DuckDBPyConnection) else con


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")
