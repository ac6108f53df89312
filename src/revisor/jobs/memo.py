"""What each job's last result was computed from, so an unchanged input is not recomputed.

Why this module exists: sync and squash run every few minutes over every open candidate, and
almost always nothing has moved. Each records, per candidate, a *fingerprint* of the commits its
result was computed from (target head, candidate head, workspace heads); the next run compares
the fingerprints of all candidates with the refs as they are now — one SQL query and one ref
listing — and touches only those that differ. Maintain records the time of each source's last
maintenance the same way. A memo is written under the job's fence (in the same transaction as
the lease check), so a job that lost its lease cannot claim work it did not finish.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from revisor.db.database import Database
from revisor.db.jobs import JobMemoRow

__all__ = ["Memos", "fingerprint"]


def fingerprint(parts: Iterable[str]) -> str:
    """A stable digest of the given strings (order matters: sort first where it must not)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()


class Memos:
    """The memos of the jobs in one database. Constructing does no I/O."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def all(self, job: str, prefix: str = "") -> dict[str, str]:
        """Every memo of ``job`` whose key starts with ``prefix``: key → fingerprint."""
        q = select(JobMemoRow.key, JobMemoRow.fingerprint).where(JobMemoRow.job == job)
        if prefix:
            q = q.where(JobMemoRow.key.startswith(prefix, autoescape=True))
        with self.db.session(write=False) as s:
            return {k: f for k, f in s.execute(q).all()}

    def get(self, job: str, key: str) -> str | None:
        with self.db.session(write=False) as s:
            row = s.get(JobMemoRow, (job, key))
            return row.fingerprint if row is not None else None

    def put(self, job: str, key: str, value: str, session: Session) -> None:
        """Remember ``value`` for ``key`` in the caller's (fenced) session."""
        row = session.get(JobMemoRow, (job, key))
        now = datetime.now(UTC)
        if row is None:
            session.add(JobMemoRow(job=job, key=key, fingerprint=value, updated_at=now))
        else:
            row.fingerprint = value
            row.updated_at = now
        session.flush()

    def forget(self, job: str, key: str, session: Session) -> None:
        row = session.get(JobMemoRow, (job, key))
        if row is not None:
            session.delete(row)
            session.flush()
