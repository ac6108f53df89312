"""Initial schema: proposals and their comments, the transaction journal, the audit log.

Generated with ``alembic revision --autogenerate`` against an empty SQLite database, then reviewed:
portable types only (VARCHAR enums, TEXT for JSON, timezone-aware timestamps), named constraints,
and a partial unique index (at most one open proposal per branch) declared for both SQLite and
PostgreSQL.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=500), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=True),
        sa.Column("target", sa.String(length=1000), nullable=True),
        sa.Column("before", sa.String(length=1000), nullable=True),
        sa.Column("after", sa.String(length=1000), nullable=True),
        sa.Column("details", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_audit_log_action_id"), "audit_log", ["action", "id"], unique=False)
    op.create_index(op.f("ix_audit_log_actor_id"), "audit_log", ["actor", "id"], unique=False)
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)
    op.create_index(op.f("ix_audit_log_source_id"), "audit_log", ["source", "id"], unique=False)
    op.create_index(op.f("ix_audit_log_target_id"), "audit_log", ["target", "id"], unique=False)

    op.create_table(
        "proposals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("author_name", sa.String(length=255), nullable=False),
        sa.Column("author_email", sa.String(length=255), nullable=False),
        sa.Column("source_branch", sa.String(length=1000), nullable=False),
        sa.Column("source_commit", sa.String(length=64), nullable=False),
        sa.Column("target_branch", sa.String(length=1000), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "open", "merged", "closed", name="proposalstatus", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("merged_commit", sa.String(length=64), nullable=True),
        sa.Column(
            "merge_method",
            sa.Enum("merge", "squash", "rebase", name="mergemethod", native_enum=False, length=16),
            nullable=True,
        ),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proposals")),
        sa.UniqueConstraint("source", "number", name=op.f("uq_proposals_source_number")),
    )
    op.create_index(
        op.f("ix_proposals_source_source_branch"),
        "proposals",
        ["source", "source_branch"],
        unique=False,
    )
    op.create_index(
        op.f("ix_proposals_source_status_number"),
        "proposals",
        ["source", "status", "number"],
        unique=False,
    )
    op.create_index(
        "uq_proposals_open_branch",
        "proposals",
        ["source", "source_branch"],
        unique=True,
        sqlite_where=sa.text("status = 'open'"),
        postgresql_where=sa.text("status = 'open'"),
    )

    op.create_table(
        "transactions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "started",
                "committed",
                "pushed",
                "proposed",
                "done",
                "empty",
                "failed",
                "compensated",
                name="txstate",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("actor_name", sa.String(length=255), nullable=False),
        sa.Column("actor_email", sa.String(length=255), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("base_ref", sa.String(length=1000), nullable=False),
        sa.Column("base_commit", sa.String(length=64), nullable=True),
        sa.Column("commit", sa.String(length=64), nullable=True),
        sa.Column("branch", sa.String(length=1000), nullable=True),
        sa.Column("direct", sa.Boolean(), nullable=False),
        sa.Column("proposal_number", sa.Integer(), nullable=True),
        sa.Column("result_json", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transactions")),
        sa.UniqueConstraint(
            "source", "idempotency_key", name=op.f("uq_transactions_source_idempotency_key")
        ),
    )
    op.create_index(
        op.f("ix_transactions_state_source"), "transactions", ["state", "source"], unique=False
    )

    op.create_table(
        "proposal_comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("author_name", sa.String(length=255), nullable=False),
        sa.Column("author_email", sa.String(length=255), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["proposals.id"],
            name=op.f("fk_proposal_comments_proposal_id_proposals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proposal_comments")),
    )
    op.create_index(
        op.f("ix_proposal_comments_proposal_id_id"),
        "proposal_comments",
        ["proposal_id", "id"],
        unique=False,
    )


def downgrade() -> None:
    # Indexes go with their tables.
    op.drop_table("proposal_comments")
    op.drop_table("transactions")
    op.drop_table("proposals")
    op.drop_table("audit_log")
