"""The persistent last-commit cache, keyed by (source, commit, directory)

One row per complete listing (``revisor.db.lastcommits``): written once, never updated. The
directory is keyed by the SHA-256 of its path so the unique key fits an index on both databases;
the listing itself is compact JSON text.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "last_commit_listings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("commit", sa.String(length=64), nullable=False),
        sa.Column("path_key", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_last_commit_listings")),
        sa.UniqueConstraint(
            "source", "path_key", "commit",
            name=op.f("uq_last_commit_listings_source_path_key_commit"),
        ),
    )


def downgrade() -> None:
    op.drop_table("last_commit_listings")
