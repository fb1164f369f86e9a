"""Alembic's entry point for the registry: runs on the connection :mod:`registry.migrate` gives.

The caller holds the transaction (SQLite's ``BEGIN IMMEDIATE`` write lock, or a
PostgreSQL advisory lock), so two processes opening a new registry at once
migrate it once, one after the other, and DDL that fails leaves nothing behind.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "the registry migrates itself when opened (registry.migrate.upgrade); "
        "offline SQL generation is not supported"
    )
context.configure(
    connection=connection,
    transactional_ddl=True,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
