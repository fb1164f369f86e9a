"""The registry's SQLModel tables (one module for all of them).

Times are UTC and filled by ``default_factory``. JSON columns hold the
lineage, verdicts and webhook payloads. ``alias_events`` and
``version_events`` are append-only: the code never updates or deletes their
rows. The schema is created and upgraded by the Alembic migrations in
``registry/migrations`` (never by ``create_all``): a change here needs a
migration, and ``tests/test_registry_migrations.py`` checks they agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class RegisteredModel(SQLModel, table=True):
    __tablename__ = "registered_models"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    next_version: int = 1  # bumped under the row lock: versions are never reused


class ModelVersion(SQLModel, table=True):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_version"),)

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="registered_models.id", index=True)
    version: int
    created_at: datetime = Field(default_factory=utcnow)
    actor: str = ""
    artifact_sha256: str = Field(max_length=64)
    data_quality: str = ""  # passed | failed
    lineage: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    extra: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    description: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))


class VersionTag(SQLModel, table=True):
    """Free key = value tags of a version (MLflow's model version tags)."""

    __tablename__ = "model_version_tags"

    model_version_id: int = Field(foreign_key="model_versions.id", primary_key=True)
    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=500)
    updated_at: datetime = Field(default_factory=utcnow)


class VersionEventRow(SQLModel, table=True):
    """Append-only record of changes to a version's tags and description."""

    __tablename__ = "version_events"

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="registered_models.id", index=True)
    version: int
    kind: str = Field(max_length=16)  # tag | untag | describe
    key: str | None = Field(default=None, max_length=64)
    value: str | None = None
    actor: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class Alias(SQLModel, table=True):
    __tablename__ = "aliases"

    model_id: int = Field(foreign_key="registered_models.id", primary_key=True)
    alias: str = Field(primary_key=True, max_length=64)
    version: int
    updated_at: datetime = Field(default_factory=utcnow)


class AliasEventRow(SQLModel, table=True):
    __tablename__ = "alias_events"

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="registered_models.id", index=True)
    alias: str = Field(max_length=64)
    from_version: int | None = None
    to_version: int | None = None
    kind: str = Field(max_length=16)  # set | promote | force | rollback | clear | refused
    actor: str = ""
    reason: str = ""
    report: str | None = None
    verdict: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)


class Webhook(SQLModel, table=True):
    __tablename__ = "webhooks"

    id: int | None = Field(default=None, primary_key=True)
    url: str
    events: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    secret_env: str | None = None  # the NAME of the env var holding the signing key
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_deliveries"

    id: int | None = Field(default=None, primary_key=True)
    webhook_id: int = Field(foreign_key="webhooks.id", index=True)
    event: str
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = "pending"  # pending | delivered | failed
    http_status: int | None = None
    attempts: int = 0
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
