"""Backup confirmations: what each backup remote was verified to hold, per ref and record.

Written against ``revisor.db.backups`` (the models), reviewed: portable types only, named
constraints, timezone-aware timestamps.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "backup_refs",
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("ref", sa.String(length=1000), nullable=False),
        sa.Column("sha", sa.String(length=64), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "ref", name=op.f("pk_backup_refs")),
    )
    op.create_table(
        "backup_records",
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("path", sa.String(length=1000), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "path", name=op.f("pk_backup_records")),
    )
    op.create_table(
        "backup_status",
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("meta_commit", sa.String(length=64), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_ok_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_backup_status")),
    )


def downgrade() -> None:
    op.drop_table("backup_status")
    op.drop_table("backup_records")
    op.drop_table("backup_refs")
