"""The record of every job run: what it was asked to do, how far it got, how it ended.

Why this module exists: a job runs in the background (a scheduler thread, a worker process), so
its only voice is its record. :class:`RunStore` writes one ``job_runs`` row per run — started
``running``, its progress updated as it goes (throttled by the runner), finished with an outcome
and one :class:`TargetResult` per target (what changed, or the error, redacted) — and reads them
back for ``revisor jobs list|show`` and ``GET /jobs/runs``. A run whose process died stays
``running`` until :meth:`RunStore.reap` marks it failed (its leases expire on their own).
"""

from __future__ import annotations

import builtins
import json
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from revisor.db.database import Database
from revisor.db.jobs import JobOutcome, JobRunRow
from revisor.errors import JobRunNotFound
from revisor.jobs.base import Detail, Target
from revisor.store.urls import redact

__all__ = ["JobRun", "RunProgress", "RunStore", "TargetResult", "Trigger"]

Trigger = str
"""``manual`` (a command or an API call) or ``schedule``."""

MAX_ERROR = 2000


@dataclass(frozen=True)
class TargetResult:
    """How one target of a run ended. ``error`` is redacted (no credentials)."""

    target: str
    source: str
    candidate: int | None
    outcome: JobOutcome
    changed: bool
    summary: str
    details: Mapping[str, Detail] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def of(
        cls, target: Target, outcome: JobOutcome, *, changed: bool = False, summary: str = "",
        details: Mapping[str, Detail] | None = None, error: str | None = None,
    ) -> TargetResult:
        return cls(target.label, target.source, target.candidate, outcome, changed, summary,
                   dict(details or {}), _clean(error))

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target, "source": self.source, "candidate": self.candidate,
            "outcome": self.outcome.value, "changed": self.changed, "summary": self.summary,
            "details": _jsonable(self.details), "error": self.error,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TargetResult:
        return cls(
            str(data["target"]), str(data["source"]), data.get("candidate"),
            JobOutcome(data["outcome"]), bool(data["changed"]), str(data.get("summary", "")),
            dict(data.get("details") or {}), data.get("error"),
        )


@dataclass(frozen=True)
class RunProgress:
    done: int
    total: int
    message: str


@dataclass(frozen=True)
class JobRun:
    """One recorded run of one job."""

    id: int
    job: str
    source: str | None
    candidate: int | None
    owner: str
    trigger: Trigger
    outcome: JobOutcome
    started_at: datetime
    finished_at: datetime | None
    progress: RunProgress
    changed: int
    results: tuple[TargetResult, ...]
    error: str | None

    @property
    def finished(self) -> bool:
        return self.outcome is not JobOutcome.RUNNING

    def counts(self) -> dict[str, int]:
        """How many targets ended in each outcome."""
        out: dict[str, int] = {}
        for r in self.results:
            out[r.outcome.value] = out.get(r.outcome.value, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "job": self.job, "source": self.source, "candidate": self.candidate,
            "owner": self.owner, "trigger": self.trigger, "outcome": self.outcome.value,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "progress": {"done": self.progress.done, "total": self.progress.total,
                         "message": self.progress.message},
            "changed": self.changed, "counts": self.counts(),
            "results": [r.to_json() for r in self.results], "error": self.error,
        }


def _jsonable(value: object) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _clean(error: str | None) -> str | None:
    if error is None:
        return None
    text = redact(error)
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"


def _to_run(row: JobRunRow) -> JobRun:
    return JobRun(
        id=row.id, job=row.job, source=row.source, candidate=row.candidate, owner=row.owner,
        trigger=row.trigger, outcome=row.outcome, started_at=row.started_at,
        finished_at=row.finished_at,
        progress=RunProgress(row.progress_done, row.progress_total, row.progress_message),
        changed=row.changed,
        results=tuple(TargetResult.from_json(r) for r in json.loads(row.results or "[]")),
        error=row.error,
    )


class RunStore:
    """The job runs in one database. Constructing does no I/O."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def start(
        self, job: str, *, owner: str, source: str | None = None, candidate: int | None = None,
        trigger: Trigger = "manual", now: datetime | None = None,
    ) -> JobRun:
        with self.db.session() as s:
            row = JobRunRow(
                job=job, source=source, candidate=candidate, owner=owner, trigger=trigger,
                outcome=JobOutcome.RUNNING, started_at=now or datetime.now(UTC),
                finished_at=None, progress_done=0, progress_total=0, progress_message="",
                changed=0, results="[]", error=None,
            )
            s.add(row)
            s.flush()
            return _to_run(row)

    def progress(
        self, run_id: int, done: int, total: int, message: str = "",
        results: Sequence[TargetResult] | None = None,
    ) -> None:
        """Record how far a running run is (and, optionally, the results so far)."""
        values: dict[str, Any] = {"progress_done": done, "progress_total": total,
                                  "progress_message": message[:500]}
        if results is not None:
            values["results"] = json.dumps([r.to_json() for r in results])
        with self.db.session() as s:
            s.execute(update(JobRunRow).where(JobRunRow.id == run_id,
                                              JobRunRow.outcome == JobOutcome.RUNNING)
                      .values(**values).execution_options(synchronize_session=False))

    def finish(
        self, run_id: int, outcome: JobOutcome, results: Sequence[TargetResult],
        *, error: str | None = None, now: datetime | None = None,
    ) -> JobRun:
        with self.db.session() as s:
            row = s.get(JobRunRow, run_id)
            if row is None:
                raise JobRunNotFound(run_id)
            row.outcome = outcome
            row.finished_at = now or datetime.now(UTC)
            row.results = json.dumps([r.to_json() for r in results])
            row.changed = sum(1 for r in results if r.changed)
            row.error = _clean(error)
            row.progress_done = row.progress_total = len(results)
            if not row.progress_message or outcome is not JobOutcome.RUNNING:
                row.progress_message = ""
            s.flush()
            return _to_run(row)

    def get(self, run_id: int) -> JobRun:
        with self.db.session(write=False) as s:
            row = s.get(JobRunRow, run_id)
            if row is None:
                raise JobRunNotFound(run_id)
            return _to_run(row)

    def list(
        self, job: str | None = None, source: str | None = None, limit: int = 50,
        before: int | None = None, outcome: JobOutcome | None = None,
    ) -> builtins.list[JobRun]:
        """Runs, newest first; ``before`` (a run id) pages back."""
        q = select(JobRunRow).order_by(JobRunRow.id.desc()).limit(max(1, min(limit, 1000)))
        if job is not None:
            q = q.where(JobRunRow.job == job)
        if source is not None:
            q = q.where(JobRunRow.source == source)
        if before is not None:
            q = q.where(JobRunRow.id < before)
        if outcome is not None:
            q = q.where(JobRunRow.outcome == outcome)
        with self.db.session(write=False) as s:
            return [_to_run(r) for r in s.scalars(q)]

    def reap(self, now: datetime | None = None) -> builtins.list[int]:
        """Mark failed the runs still ``running`` whose process (on this host) is dead; returns
        their ids. Runs of other hosts are left to those hosts."""
        host = socket.gethostname()[:64]
        dead: builtins.list[int] = []
        with self.db.session(write=False) as s:
            rows = s.execute(select(JobRunRow.id, JobRunRow.owner)
                             .where(JobRunRow.outcome == JobOutcome.RUNNING)).all()
        for run_id, owner in rows:
            parts = owner.split(":")
            if len(parts) >= 2 and parts[0] == host and parts[1].isdigit() \
                    and not _alive(int(parts[1])):
                dead.append(run_id)
        if dead:
            with self.db.session() as s:
                s.execute(update(JobRunRow)
                          .where(JobRunRow.id.in_(dead), JobRunRow.outcome == JobOutcome.RUNNING)
                          .values(outcome=JobOutcome.FAILED, finished_at=now or datetime.now(UTC),
                                  error="the process running it died")
                          .execution_options(synchronize_session=False))
        return dead


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
