"""Tags and a description per model version, and the record of their changes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

``model_versions.description`` (empty for existing versions), the
``model_version_tags`` table (key = value per version) and the append-only
``version_events`` (who tagged or described which version, when). Refused
promotions are recorded in ``alias_events`` with kind ``refused``: no schema
change (``kind`` is a 16-character string).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("description", sa.Text(), nullable=False, server_default=""))
    op.create_table(
        "model_version_tags",
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=500), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"]),
        sa.PrimaryKeyConstraint("model_version_id", "key"),
    )
    op.create_table(
        "version_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=True),
        sa.Column("value", sa.String(), nullable=True),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["registered_models.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_version_events_model_id", "version_events", ["model_id"])


def downgrade() -> None:
    op.drop_index("ix_version_events_model_id", table_name="version_events")
    op.drop_table("version_events")
    op.drop_table("model_version_tags")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("description")
