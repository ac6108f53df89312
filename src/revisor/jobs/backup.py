"""The ``backup`` job: each source with a backup remote, pushed and verified (see
``revisor.services.backup``).

Why this module exists: it is the thin adapter between the runner and the backup service. A
target is a source that has ``backup:`` configured; it holds the lease ``backup:<source>``
(:func:`backup_key`), which cleanup takes too, so a cleanup never deletes between a backup's
push and its confirmation, and two backups of one source never push at once. The service's
fence is the job's: a backup whose lease was lost moves no ref, pushes nothing more and
records no confirmation. A remote that is down fails the target (the runner records the
redacted error); the other sources go on.

:func:`restore_under_lease` is ``revisor restore``'s way in: a restore takes the same lease, so
no backup pushes (and no cleanup deletes) while the refs and rows are put back.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from revisor.db.backups import Fence
from revisor.errors import Conflict
from revisor.jobs.base import Job, JobContext, JobName, Target, TargetOutcome, register
from revisor.jobs.leases import Leases, new_owner
from revisor.services.backup import backup_source
from revisor.services.restore import RestoreProgress, RestoreResult, restore_source

if TYPE_CHECKING:
    from revisor.bootstrap import Revisor

__all__ = ["BackupJob", "backup_key", "job_fence", "restore_under_lease"]

RESTORE_TTL = 600.0
"""Seconds the restore's lease lasts; renewed while the restore reports progress."""


def backup_key(source: str) -> str:
    """The lease shared by the backup and the cleanup of one source."""
    return f"backup:{source}"


def job_fence(ctx: JobContext) -> Fence:
    """The services' fence: the job's leases, checked (in the session, when one is given)."""

    def fence(session: Session | None) -> None:
        ctx.check(session)

    return fence


@register
class BackupJob(Job):
    name = JobName.BACKUP
    description = "push refs/revisor/* and the candidate records to each backup remote, verified"
    default_ttl = 600.0

    def targets(
        self, rv: Revisor, *, source: str | None = None, candidate: int | None = None
    ) -> list[Target]:
        names = [source] if source is not None else rv.store.names()
        return [Target(n) for n in names if rv.config.source(n).backup is not None]

    def lease_keys(self, target: Target) -> tuple[str, ...]:
        return (backup_key(target.source),)

    def run_target(self, ctx: JobContext, target: Target) -> TargetOutcome:
        rv = ctx.rv

        def progress(phase: str, done: int, total: int) -> None:
            ctx.progress(done, total, phase)

        # rows that lag their refs (a crash between a ref's CAS and its row) are brought to
        # the refs first, so the records backed up describe what the refs hold
        ctx.check()
        rv.source(target.source).reconcile()
        result = backup_source(
            rv.store.source(target.source), rv.db, rv.config,
            env=rv.store.env,
            fence=job_fence(ctx), progress=progress,
        )
        return TargetOutcome(
            changed=result.changed,
            summary=(f"{result.pushed} refs pushed, {result.refs} confirmed on {result.url}, "
                     f"{result.records_changed} of {result.records} records changed"),
            details={"url": result.url, "meta_commit": result.meta_commit,
                     "pushed": result.pushed, "refs": result.refs, "records": result.records,
                     "records_changed": result.records_changed, "replanned": result.replanned,
                     "seconds": round(result.seconds, 3)},
        )



def restore_under_lease(
    rv: Revisor, source: str, *, force: bool = False, progress: RestoreProgress | None = None,
) -> RestoreResult:
    """``restore_source`` holding ``backup:<source>``: Conflict (nothing done) while a backup,
    a cleanup or another restore of the source holds it; every write fenced by the lease."""
    leases = Leases(rv.db)
    key = backup_key(source)
    lease = leases.acquire(key, new_owner("restore"), RESTORE_TTL)
    if lease is None:
        holder = leases.held(key)
        raise Conflict(
            f"a backup, cleanup or restore of source {source!r} is running"
            + (f" ({holder.owner})" if holder is not None else ""),
            hint="try again when it has finished",
        )
    held = lease
    renewed = time.monotonic()

    def fence(session: Session | None) -> None:
        leases.check(held, session)

    def report(phase: str, done: int, total: int) -> None:
        nonlocal held, renewed
        if time.monotonic() - renewed > RESTORE_TTL / 3:
            held, renewed = leases.renew(held), time.monotonic()
        if progress is not None:
            progress(phase, done, total)

    try:
        return restore_source(rv.config, source, store=rv.store, db=rv.db, env=rv.store.env,
                              force=force, progress=report, fence=fence)
    finally:
        leases.release(held)
