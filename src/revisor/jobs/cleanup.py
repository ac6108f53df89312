"""The ``cleanup`` job: the retention policy applied to each source (see
``revisor.services.retention``).

Why this module exists: it is the thin adapter between the runner and the retention service. A
target is a source; it holds the same lease as the backup of that source (``backup:<source>``),
so a cleanup never runs while a backup of the source pushes and confirms: when the backup holds
it, the cleanup target is skipped (recorded by the runner) and tried again at the next run.
Items whose latest state the backup has not confirmed are held back and reported in the
outcome's details; they are never deleted. ``--candidate`` narrows a run to that candidate (its
target is ``<source>#<id>``; the lease is still the source's backup lease).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from revisor.db.candidates import CandidateStore
from revisor.errors import InvalidInput
from revisor.jobs.backup import backup_key, job_fence
from revisor.jobs.base import Job, JobContext, JobName, Target, TargetOutcome, register
from revisor.jobs.leases import candidate_key
from revisor.jobs.memo import Memos
from revisor.services.retention import ItemKind, Verdict, cleanup_source

if TYPE_CHECKING:
    from revisor.bootstrap import Revisor

__all__ = ["CleanupJob"]


@register
class CleanupJob(Job):
    name = JobName.CLEANUP
    description = "delete what the retention policy says is due, once the backup holds it"
    default_ttl = 600.0
    by_candidate = True

    def targets(
        self, rv: Revisor, *, source: str | None = None, candidate: int | None = None
    ) -> list[Target]:
        if candidate is not None:
            if source is None:
                raise InvalidInput("a candidate is named within a source: give the source too")
            CandidateStore(rv.db).get(source, candidate)  # CandidateNotFound
            return [Target(source, candidate)]
        names = [source] if source is not None else rv.store.names()
        return [Target(n) for n in names]

    def lease_keys(self, target: Target) -> tuple[str, ...]:
        return (backup_key(target.source),)

    def run_target(self, ctx: JobContext, target: Target) -> TargetOutcome:
        rv = ctx.rv
        result = cleanup_source(rv.store.source(target.source), rv.db, rv.config,
                                env=rv.store.env, fence=job_fence(ctx),
                                candidate=target.candidate)
        gone = [i.candidate_id for i in result.items
                if i.kind is ItemKind.CANDIDATE and i.verdict is Verdict.DELETED]
        if gone:  # what sync and squash remembered about them goes too
            memos = Memos(rv.db)
            with ctx.fence() as s:
                for cid in gone:
                    for job in (JobName.SYNC, JobName.SQUASH):
                        memos.forget(job.value, candidate_key(target.source, cid), s)
        items = {
            f"{i.kind.value}:{i.candidate_id}": str(i.verdict) + (f" ({i.detail})" if i.detail
                                                                   else "")
            for i in result.items
        }
        summary = (f"{result.deleted} deleted, {result.held_back} held back"
                   if result.items else "nothing due")
        return TargetOutcome(
            changed=result.deleted > 0,
            summary=summary,
            details={"deleted": result.deleted, "held_back": result.held_back, "items": items},
        )
