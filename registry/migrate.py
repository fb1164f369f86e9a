"""The registry's schema, kept current by Alembic (``registry/migrations``).

:func:`upgrade` runs when a :class:`~registry.store.Registry` opens its
database: a new database gets every table, a database of an earlier release
is upgraded in place (a release-0.1.0 registry, made before migrations
existed, is recognised by its tables and recorded as revision 0001 first).
Opening a current database costs one small query; Alembic is imported only
when there is something to do.

The upgrade runs in one transaction under the database's write lock
(SQLite's ``BEGIN IMMEDIATE``; a PostgreSQL advisory lock), so concurrent
processes migrate once, one after the other, and a failed upgrade leaves the
database as it was. A database newer than this code is refused, not touched.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DatabaseError

from registry.db import busy
from registry.errors import RegistryError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
REVISIONS = ("0001", "0002")  # oldest first; the last is the head
HEAD = REVISIONS[-1]
_PG_LOCK = 7_316_424_159  # pg_advisory_xact_lock key: "fraudwatch registry migration"


def current_revision(conn: Connection) -> str | None:
    """The database's recorded revision; None for a new or a release-0.1.0 database."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    value = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    return str(value) if value is not None else None


def _check_known(revision: str | None, where: str) -> None:
    if revision is not None and revision not in REVISIONS:
        raise RegistryError(
            f"the registry database {where} is at schema revision {revision!r}, which this "
            f"fraudwatch does not know (it knows up to {HEAD!r}): it was upgraded by a newer "
            "fraudwatch; upgrade fraudwatch, nothing was changed"
        )


def upgrade(engine: Engine) -> str:
    """Bring the database to :data:`HEAD`; return the revision it was at (None: new)."""
    where = engine.url.render_as_string(hide_password=True)
    try:
        with busy(where), engine.connect() as conn:
            before = current_revision(conn)
            conn.rollback()
    except DatabaseError as exc:  # not a database at all, or one we may not read
        raise RegistryError(
            f"the registry database {where} cannot be opened: {exc.orig}; nothing was changed"
        ) from None
    _check_known(before, where)
    if before == HEAD:
        return before
    from alembic import command
    from alembic.config import Config

    with busy(where), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK})")
        before = current_revision(conn)  # under the lock: another process may have migrated
        _check_known(before, where)
        if before != HEAD:
            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, HEAD)
    return before or ""


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema back to ``revision`` (``base`` drops every table); for operators."""
    from alembic import command
    from alembic.config import Config

    with busy(engine.url.render_as_string(hide_password=True)), engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
