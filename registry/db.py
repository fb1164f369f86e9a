"""Engines and sessions for the registry database (no engine is created at import time).

SQLite (the default) gets a busy timeout, WAL, and ``BEGIN IMMEDIATE`` for
every transaction, so concurrent writers queue for the write lock instead of
failing half-way; a lock held past the timeout becomes
:class:`~registry.errors.RegistryBusy`. PostgreSQL serialises version numbers
and alias moves with ``SELECT ... FOR UPDATE`` on the model's row.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, create_engine

from registry.errors import RegistryBusy


def make_engine(url: str, *, busy_timeout: float = 30.0) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": busy_timeout})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True)


@contextmanager
def busy(where: str) -> Iterator[None]:
    try:
        yield
    except OperationalError as exc:
        text = str(exc.orig).lower()
        if "locked" in text or "busy" in text:
            raise RegistryBusy(
                f"the registry database ({where}) stayed locked by another process; "
                "nothing was changed, try again"
            ) from None
        raise


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    with busy(engine.url.render_as_string(hide_password=True)), Session(engine) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
