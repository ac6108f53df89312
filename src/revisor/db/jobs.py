"""The jobs' tables: leases with fencing tokens, recorded runs, the schedule, and memos.

Why this module exists: the jobs (``revisor.jobs``) coordinate through the database, which every
process and node shares (DESIGN principle 8): a lease row per thing a job works on (its fencing
token only ever grows), a row per run (visible through ``revisor jobs list`` and the HTTP API),
a row per scheduled job (its next due time, claimed with a conditional UPDATE so that it runs
once per due time across processes), and memo rows (what each job's last result was computed
from, so unchanged work is skipped). The models follow ``revisor.db.models``: portable types,
JSON as text, UTC times. The SQL that uses them lives next to it in ``revisor.jobs``; callers
above get frozen dataclasses.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from revisor.db.models import NAME, REF, Base, _str_enum

__all__ = [
    "JobMemoRow",
    "JobOutcome",
    "JobRunRow",
    "JobScheduleRow",
    "LeaseRow",
]


class JobOutcome(enum.StrEnum):
    """How a run (or one target of it) ended; ``running`` while it runs."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # some targets failed or were skipped, others succeeded
    FAILED = "failed"
    SKIPPED = "skipped"  # nothing was done: every target's lease was held elsewhere


class LeaseRow(Base):
    """A lease on one thing (``source:<name>``, ``candidate:<source>:<id>``, ``scheduler``…).

    The row is never deleted: ``token`` grows by one at every acquisition, so a holder whose
    lease was taken over is recognised by its smaller token. Released: ``owner`` empty and
    ``expires_at`` in the past.
    """

    __tablename__ = "job_leases"

    key: Mapped[str] = mapped_column(String(REF), primary_key=True)
    owner: Mapped[str] = mapped_column(String(NAME))
    token: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    expires_at: Mapped[datetime]
    acquired_at: Mapped[datetime]


class JobRunRow(Base):
    """One run of one job: what it was asked to do, how far it got and how it ended.

    ``results`` is a JSON list of per-target results (target, outcome, changed, summary,
    details, error); ``progress_*`` are updated (throttled) while it runs.
    """

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(32))
    source: Mapped[str | None] = mapped_column(String(NAME))
    candidate: Mapped[int | None] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(String(NAME))
    trigger: Mapped[str] = mapped_column(String(16))  # manual / schedule
    outcome: Mapped[JobOutcome] = mapped_column(_str_enum(JobOutcome))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    progress_done: Mapped[int] = mapped_column(Integer)
    progress_total: Mapped[int] = mapped_column(Integer)
    progress_message: Mapped[str] = mapped_column(Text)
    changed: Mapped[int] = mapped_column(Integer)  # how many targets changed something
    results: Mapped[str] = mapped_column(Text)  # a JSON list
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index(None, "job", "id"),
        Index(None, "source", "id"),
        Index(None, "outcome", "id"),
        {"sqlite_autoincrement": True},  # ids never reused: they are the pagination cursor
    )


class JobScheduleRow(Base):
    """When a job is next due; claimed by moving ``next_due`` with a conditional UPDATE."""

    __tablename__ = "job_schedule"

    job: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_due: Mapped[datetime]
    spec: Mapped[str] = mapped_column(String(NAME))  # the interval or cron it was computed from
    claimed_by: Mapped[str | None] = mapped_column(String(NAME))
    claimed_at: Mapped[datetime | None]


class JobMemoRow(Base):
    """What a job's last result for one key was computed from (a fingerprint of commit ids, a
    time), so a run skips what has not moved since."""

    __tablename__ = "job_memos"

    job: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(REF), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]
