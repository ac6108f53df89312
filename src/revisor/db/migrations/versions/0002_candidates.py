"""Version candidates and their per-user workspaces.

Generated with ``alembic revision --autogenerate`` against a database at 0001, then reviewed:
portable types only (VARCHAR enums, TEXT for JSON, timezone-aware timestamps), named
constraints, ids that SQLite never reuses for candidates (they name refs), and workspaces that go
with their candidate.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "candidates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("author_name", sa.String(length=255), nullable=False),
        sa.Column("author_email", sa.String(length=255), nullable=False),
        sa.Column("target_branch", sa.String(length=1000), nullable=False),
        sa.Column("base_commit", sa.String(length=64), nullable=False),
        sa.Column("head_commit", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "open", "submitted", "abandoned", name="candidatestatus", native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "strategy",
            sa.Enum("rebase", "merge", name="candidatestrategy", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("has_conflicts", sa.Boolean(), nullable=False),
        sa.Column("conflicts", sa.Text(), nullable=False),
        sa.Column("target_checked", sa.String(length=64), nullable=True),
        sa.Column("rewrites", sa.Text(), nullable=False),
        sa.Column("proposal_provider", sa.String(length=32), nullable=True),
        sa.Column("proposal_number", sa.Integer(), nullable=True),
        sa.Column("proposal_url", sa.Text(), nullable=True),
        sa.Column("change_id", sa.String(length=255), nullable=True),
        sa.Column("submitted_commit", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_candidates")),
        sa.UniqueConstraint("source", "name", name=op.f("uq_candidates_source_name")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_candidates_source_status_id"),
        "candidates",
        ["source", "status", "id"],
        unique=False,
    )

    op.create_table(
        "workspaces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("user_name", sa.String(length=255), nullable=False),
        sa.Column("ref_name", sa.String(length=255), nullable=False),
        sa.Column("author_name", sa.String(length=255), nullable=False),
        sa.Column("author_email", sa.String(length=255), nullable=False),
        sa.Column("base_commit", sa.String(length=64), nullable=False),
        sa.Column("changes_base", sa.String(length=64), nullable=True),
        sa.Column("head_commit", sa.String(length=64), nullable=False),
        sa.Column("conflicts", sa.Text(), nullable=False),
        sa.Column("resolutions", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["candidates.id"],
            name=op.f("fk_workspaces_candidate_id_candidates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspaces")),
        sa.UniqueConstraint(
            "candidate_id", "user_name", name=op.f("uq_workspaces_candidate_id_user_name")
        ),
    )


def downgrade() -> None:
    op.drop_table("workspaces")
    op.drop_index(op.f("ix_candidates_source_status_id"), table_name="candidates")
    op.drop_table("candidates")
