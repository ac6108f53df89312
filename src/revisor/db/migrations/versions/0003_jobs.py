"""Job runs, leases with fencing tokens, the schedule, and what each job last computed

Written against ``revisor.db.jobs`` and checked with ``compare_metadata``: portable types only
(VARCHAR enums, TEXT for JSON, timezone-aware timestamps), named constraints, run ids that
SQLite never reuses (they are the pagination cursor).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_leases",
        sa.Column("key", sa.String(length=1000), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("token", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_job_leases")),
    )
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=True),
        sa.Column("candidate", sa.Integer(), nullable=True),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("progress_done", sa.Integer(), nullable=False),
        sa.Column("progress_total", sa.Integer(), nullable=False),
        sa.Column("progress_message", sa.Text(), nullable=False),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.Column("results", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_runs")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_job_runs_job_id"), "job_runs", ["job", "id"], unique=False)
    op.create_index(op.f("ix_job_runs_source_id"), "job_runs", ["source", "id"], unique=False)
    op.create_index(op.f("ix_job_runs_outcome_id"), "job_runs", ["outcome", "id"], unique=False)
    op.create_table(
        "job_schedule",
        sa.Column("job", sa.String(length=32), nullable=False),
        sa.Column("next_due", sa.DateTime(timezone=True), nullable=False),
        sa.Column("spec", sa.String(length=255), nullable=False),
        sa.Column("claimed_by", sa.String(length=255), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_job_schedule")),
    )
    op.create_table(
        "job_memos",
        sa.Column("job", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=1000), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job", "key", name=op.f("pk_job_memos")),
    )


def downgrade() -> None:
    op.drop_table("job_memos")
    op.drop_table("job_schedule")
    op.drop_index(op.f("ix_job_runs_outcome_id"), table_name="job_runs")
    op.drop_index(op.f("ix_job_runs_source_id"), table_name="job_runs")
    op.drop_index(op.f("ix_job_runs_job_id"), table_name="job_runs")
    op.drop_table("job_runs")
    op.drop_table("job_leases")
